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
	for _, fx := range referenceFixtures() {
		if fx.name != "hf-tiny" {
			continue
		}
		t.Run(fx.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(fx.dir, "onnx", "encoder_model.onnx")); err != nil {
				skipOrFail(t, "generated fixture %s is absent (make test-transcribe generates it): %v", fx.dir, err)
			}
			golden := filepath.Join(repo, "testdata/transcribe/golden", "longform-"+fx.name+".json")
			checkLongForm(t, fixtureTranscriber(t, fx.dir), golden)
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
