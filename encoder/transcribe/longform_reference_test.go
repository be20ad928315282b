package transcribe

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// longReference is testdata/transcribe/longref.mjs's output.
type longReference struct {
	Versions map[string]string `json:"versions"`
	Seconds  int               `json:"seconds"`
	Chunks   []struct {
		IDs     []int     `json:"ids"`
		Margins []float64 `json:"margins"`
	} `json:"chunks"`
}

// longClip is testdata/transcribe/clips.mjs's longClip: jfk, 5 s of
// silence, jfk, 10 s of noise (0.3, seed 7 + the cycle's index), repeated
// and cut at seconds.
func longClip(jfk []float32, seconds int) []float32 {
	out := make([]float32, 0, seconds*SampleRate)
	for k := 0; len(out) < cap(out); k++ {
		for _, p := range [][]float32{jfk, make([]float32, 5*SampleRate), jfk, noise(10*SampleRate, 0.3, uint32(7+k))} {
			out = append(out, p[:min(len(p), cap(out)-len(out))]...)
		}
	}
	return out
}

// TestReferenceLongForm: the long-form loop without timestamps (fixed 30 s
// windows, no previous-text prompt, temperature 0 only, no no-speech skip)
// samples, window by window, the ids of the @huggingface/transformers ASR
// pipeline with chunk_length_s 30 and stride_length_s 0 on the same export
// and the same 305 s (10 full windows and a 5 s last one, whose audio both
// sides pad with zeros to 30 s before the log-mel).
func TestReferenceLongForm(t *testing.T) {
	onTiny(t, "longform-", checkLongForm)
}

// onTiny runs check on the hf-tiny fixture with its golden PREFIX + "hf-tiny.json"
// (the long-form references are made for that model only).
func onTiny(t *testing.T, prefix string, check func(*testing.T, *Transcriber, string)) {
	for _, fx := range referenceFixtures() {
		if fx.name != "hf-tiny" {
			continue
		}
		t.Run(fx.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(fx.dir, "onnx", "encoder_model.onnx")); err != nil {
				skipOrFail(t, "generated fixture %s is absent (make test-transcribe generates it): %v", fx.dir, err)
			}
			check(t, fixtureTranscriber(t, fx.dir), filepath.Join(repo, "testdata/transcribe/golden", prefix+fx.name+".json"))
		})
	}
}

// checkLongForm transcribes the golden's clip and compares each window's
// ids with the reference chunk's.
func checkLongForm(t *testing.T, tr *Transcriber, golden string) {
	t.Helper()
	b, err := os.ReadFile(golden)
	if err != nil {
		skipOrFail(t, "reference %s is absent (make transcribe-golden writes it): %v", golden, err)
	}
	var ref longReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s: %v", golden, err)
	}
	o := Options{Language: "en", Temperatures: []float64{0}, WithoutTimestamps: true,
		NoConditionOnPrevious: true, NoSpeechThreshold: math.NaN()}
	res, err := tr.Transcribe(context.Background(), longClip(jfk(t), ref.Seconds), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Segments) != len(ref.Chunks) {
		t.Fatalf("%d s: %d windows, reference %d chunks", ref.Seconds, len(res.Segments), len(ref.Chunks))
	}
	prompt, err := tr.sotSequence("en", tokenizer.Transcribe, false)
	if err != nil {
		t.Fatal(err)
	}
	equal, ties, ids := 0, 0, 0
	for i, c := range ref.Chunks {
		seg := res.Segments[i]
		if seg.Seek != i*mel.Frames {
			t.Errorf("window %d: seek %d, want %d", i, seg.Seek, i*mel.Frames)
		}
		if k := firstDiff(c.IDs[:min(len(prompt), len(c.IDs))], prompt); k >= 0 {
			t.Fatalf("chunk %d: reference prompt %v, ours %v", i, c.IDs[:min(len(prompt), len(c.IDs))], prompt)
		}
		want := c.IDs[len(prompt):]
		if n := len(want); n > 0 && want[n-1] == tr.sp.EOT {
			want = want[:n-1]
		}
		ids += len(want)
		got := seg.Tokens
		if len(got) == 0 && blankText(t, tr, want) { // add clears a blank segment's tokens
			t.Logf("window %d: blank text on both sides (%d reference ids)", i, len(want))
			equal++
			continue
		}
		switch k := firstDiff(got, want); {
		case k < 0:
			equal++
		case k < len(c.Margins) && c.Margins[k] <= tieMargin:
			ties++
			t.Logf("window %d: tie at step %d (reference margin %.4f ≤ %.2f): %d vs %d; the %d ids before are equal", i, k, c.Margins[k], tieMargin, at(got, k), at(want, k), k)
		default:
			t.Errorf("window %d: step %d: id %d, reference %d (margin %.4f)\n got %v\nwant %v", i, k, at(got, k), at(want, k), at64(c.Margins, k), got, want)
		}
	}
	t.Logf("%d s, %d windows: %d equal (%d reference ids in all), %d ties (transformers.js %s)", ref.Seconds, len(ref.Chunks), equal, ids, ties, ref.Versions["transformers"])
}

func blankText(t *testing.T, tr *Transcriber, ids []int) bool {
	t.Helper()
	s, err := tr.tk.Decode(textTokens(ids, tr.sp.EOT))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(s) == ""
}

// seekReference is testdata/transcribe/seekref.py's output.
type seekReference struct {
	Seconds int    `json:"seconds"`
	Torch   string `json:"torch"`
	Windows []struct {
		Seek    int       `json:"seek"`
		IDs     []int     `json:"ids"`
		Margins []float64 `json:"margins"`
	} `json:"windows"`
	Segments []struct {
		Seek   int     `json:"seek"`
		Start  float64 `json:"start"`
		End    float64 `json:"end"`
		Tokens []int   `json:"tokens"`
	} `json:"segments"`
}

// TestReferenceSeek: Whisper's long-form loop with timestamps (seeking to
// the last timestamp, conditioning on previous text, Whisper's timestamp
// rules; greedy, no fallback, no no-speech skip) gives the segments of a
// PyTorch reference of that loop on the same model and audio (seekref.py),
// seek, times and ids.
func TestReferenceSeek(t *testing.T) {
	onTiny(t, "seek-", checkSeek)
}

func checkSeek(t *testing.T, tr *Transcriber, golden string) {
	t.Helper()
	b, err := os.ReadFile(golden)
	if err != nil {
		skipOrFail(t, "reference %s is absent (make transcribe-golden writes it): %v", golden, err)
	}
	var ref seekReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s: %v", golden, err)
	}
	o := Options{Language: "en", Temperatures: []float64{0}, NoSpeechThreshold: math.NaN()}
	res, err := tr.Transcribe(context.Background(), longClip(jfk(t), ref.Seconds), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range max(len(res.Segments), len(ref.Segments)) {
		if i >= len(res.Segments) || i >= len(ref.Segments) {
			t.Fatalf("%d segments, reference %d; equal up to %d", len(res.Segments), len(ref.Segments), i)
		}
		got, want := res.Segments[i], ref.Segments[i]
		if got.Seek == want.Seek && math.Abs(got.Start-want.Start) < 1e-9 && math.Abs(got.End-want.End) < 1e-9 && firstDiff(got.Tokens, want.Tokens) < 0 {
			continue
		}
		if tieBefore(t, tr, res.Segments, ref, want.Seek) {
			t.Logf("segment %d: the loops part after a tie; %d segments equal before", i, i)
			return
		}
		t.Fatalf("segment %d: seek %d %.2f-%.2f %v\nreference seek %d %.2f-%.2f %v", i, got.Seek, got.Start, got.End, got.Tokens, want.Seek, want.Start, want.End, want.Tokens)
	}
	ids := 0
	for _, w := range ref.Windows {
		ids += len(w.IDs)
	}
	t.Logf("%d s: %d windows, %d segments equal (seek, times, ids); %d sampled ids (torch %s)", ref.Seconds, len(ref.Windows), len(ref.Segments), ids, ref.Torch)
}

// tieBefore reports (and logs) whether our window at seek parted from the
// reference's at a near-tie step: its segments' ids against the reference
// window's sampled ids.
func tieBefore(t *testing.T, tr *Transcriber, segs []Segment, ref seekReference, seek int) bool {
	t.Helper()
	var got []int
	for _, s := range segs {
		if s.Seek == seek {
			got = append(got, s.Tokens...)
		}
	}
	for _, w := range ref.Windows {
		if w.Seek != seek {
			continue
		}
		want := w.IDs
		if n := len(want); n > 0 && want[n-1] == tr.sp.EOT {
			want = want[:n-1]
		}
		k := firstDiff(got, want)
		if k >= 0 && k < len(w.Margins) && w.Margins[k] <= tieMargin {
			t.Logf("window at seek %d: tie at step %d (reference margin %.4f ≤ %.2f): %d vs %d", seek, k, w.Margins[k], tieMargin, at(got, k), at(want, k))
			return true
		}
	}
	return false
}
