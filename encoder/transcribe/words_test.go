package transcribe

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
)

func TestMedianFilter(t *testing.T) {
	w := []float64{1, 5, 2, 8, 3, 4, 4, 4}
	medianFilter(w, 2, 4, 3) // rows [1 5 2 8] and [3 4 4 4], reflect-padded
	if want := []float64{5, 2, 5, 2, 4, 4, 4, 4}; !reflect.DeepEqual(w, want) {
		t.Errorf("median filter: %v, want %v", w, want)
	}
	short := []float64{3, 1}
	medianFilter(short, 1, 2, 7) // no longer than width/2: unchanged
	if !reflect.DeepEqual(short, []float64{3, 1}) {
		t.Errorf("short row changed: %v", short)
	}
}

func TestDTW(t *testing.T) {
	// two tokens over four positions: the first attends to 0–1, the second to 2–3
	m := []float64{1, 1, -1, -1, -1, -1, 1, 1}
	text, time := dtw(m, 2, 4)
	if !reflect.DeepEqual(text, []int{0, 0, 1, 1}) || !reflect.DeepEqual(time, []int{0, 1, 2, 3}) {
		t.Errorf("path text %v time %v", text, time)
	}
}

func TestMergePunctuations(t *testing.T) {
	a := []wordTiming{{word: " \"", tokens: []int{1}}, {word: "Hi", tokens: []int{2}}, {word: ",", tokens: []int{3}}, {word: " there", tokens: []int{4}}, {word: ".", tokens: []int{5}}}
	mergePunctuations(a)
	var got []string
	for _, w := range a {
		got = append(got, w.word)
	}
	if want := []string{"", " \"Hi,", "", " there.", ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("merged %q, want %q", got, want)
	}
	if !reflect.DeepEqual(a[1].tokens, []int{1, 2, 3}) {
		t.Errorf("tokens %v", a[1].tokens)
	}
}

// TestWordTimestamps: words are pieces of the text in order, timed in
// order within the audio, each with a probability. (Whisper hands a word
// that spans two segments to the first one, so with random weights, whose
// segments need not break at spaces, the words of a segment need not spell
// its text.)
func TestWordTimestamps(t *testing.T) {
	tr := newMicro(t, 0)
	for _, o := range []Options{
		{Temperatures: []float64{0}, Language: "en", WordTimestamps: true},
		{Temperatures: []float64{0}, Language: "en", WordTimestamps: true, WithoutTimestamps: true},
	} {
		r, err := tr.Transcribe(context.Background(), jfk(t), o, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, tr.tk, tr.cfg.Generation, r)
		n, rest := 0, r.Text
		for _, s := range r.Segments {
			prev := 0.0
			for _, w := range s.Words {
				k := strings.Index(rest, w.Word)
				if k < 0 {
					t.Errorf("word %q is not in the rest of the text %q", w.Word, rest)
				} else {
					rest = rest[k+len(w.Word):]
				}
				n++
				if w.Start > w.End || w.Start < prev-1e-9 || w.End > r.Duration+30 || w.Probability < 0 || w.Probability > 1 {
					t.Errorf("word %+v after %.2f in segment [%.2f, %.2f]", w, prev, s.Start, s.End)
				}
				prev = w.Start
			}
		}
		t.Logf("timestamps=%v: %d segments, %d words", !o.WithoutTimestamps, len(r.Segments), n)
	}
}

// TestAlignForcedText: word timestamps of given text over the jfk window:
// Whisper's words, timed in order within the audio, split between two
// segments as their tokens are.
func TestAlignForcedText(t *testing.T) {
	tr := newMicro(t, 0)
	r := &run{t: tr, o: Options{Language: "en"}.Defaulted(), pcm: audio.Float32(jfk(t))}
	r.res.Language = "en"
	cross, err := encodeCross(context.Background(), r, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := tr.tk.Encode(" And so my fellow Americans,")
	second := tr.tk.Encode(" ask not what your country can do for you.")
	tb := tr.sp.TimestampBegin
	segs := []Segment{
		{Start: 0, End: 4, Tokens: append(append([]int{tb}, first...), tb+200), Text: " And so my fellow Americans,"},
		{Start: 4, End: 10, Tokens: append(append([]int{tb + 200}, second...), tb+500), Text: " ask not what your country can do for you."},
	}
	if err := tr.addWordTimestamps(context.Background(), segs, cross, "en", "transcribe", 1100, 0); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{" And", " so", " my", " fellow", " Americans,"}, {" ask", " not", " what", " your", " country", " can", " do", " for", " you."}}
	prev := 0.0
	for i, s := range segs {
		var got []string
		for _, w := range s.Words {
			got = append(got, w.Word)
			if w.Start < prev-1e-9 || w.End < w.Start || w.End > 11 || !(w.Probability > 0 && w.Probability <= 1) {
				t.Errorf("word %+v after %.2f", w, prev)
			}
			prev = w.Start
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("segment %d words %q, want %q", i, got, want[i])
		}
		if s.Start != s.Words[0].Start && s.Start-0.5 <= s.Words[0].Start {
			t.Errorf("segment %d starts at %.2f, its first word at %.2f", i, s.Start, s.Words[0].Start)
		}
		t.Logf("segment %d [%.2f, %.2f]: %+v", i, s.Start, s.End, s.Words)
	}
}
