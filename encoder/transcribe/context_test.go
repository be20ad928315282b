package transcribe

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
)

// TestMaxTokensHalfTextContext: with MaxTokens unset a window samples at
// most half the model's text context (Whisper's sample_len), so a model
// with a short context transcribes with default options; a MaxTokens over
// the context is still refused.
func TestMaxTokensHalfTextContext(t *testing.T) {
	const textContext = 48
	tr := shortContext(t, textContext)
	// What the server checks before decoding audio: defaults fit the model.
	if err := tr.CheckOptions(Options{}); err != nil {
		t.Fatalf("CheckOptions of the defaults on a %d-token context: %v", textContext, err)
	}
	pcm := jfk(t)
	// The default must be the explicit half-context run, segment for segment.
	o := Options{Temperatures: []float64{0}}
	got, err := tr.Transcribe(context.Background(), pcm, o, nil)
	if err != nil {
		t.Fatalf("default MaxTokens on a %d-token context: %v", textContext, err)
	}
	o.MaxTokens = textContext / 2
	want, err := tr.Transcribe(context.Background(), pcm, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Segments) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("default MaxTokens gives %+v\nwant MaxTokens %d's %+v (not empty)", got, textContext/2, want)
	}
	o.MaxTokens = DefaultMaxTokens
	if _, err := tr.Transcribe(context.Background(), pcm, o, nil); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "max_tokens") {
		t.Errorf("MaxTokens %d on a %d-token context: %v, want an invalid max_tokens option", DefaultMaxTokens, textContext, err)
	}
}

// shortContext returns a Transcriber over hf-micro cut to a text context
// of n positions (converttest.ShortContext).
func shortContext(t *testing.T, n int) *Transcriber {
	t.Helper()
	f := microFixture(t)
	dir := t.TempDir()
	if err := converttest.ShortContext(microDir, dir, n); err != nil {
		t.Fatal(err)
	}
	dec, err := decoder.LoadHF(dir, decoder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dec.Close() })
	gen, err := ReadGenerationConfig(dir, f.tk)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(Config{Encoder: ModelEncoder{f.enc}, Decoder: dec, Tokenizer: f.tk, Generation: gen, NMels: 80, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// TestWithoutTimestampsOneSegmentPerWindow: decoded with <|notimestamps|>,
// a window is one segment over its whole span, even when the model samples
// timestamp tokens anyway (hf-micro's random weights do, as transformers.js
// does on the same export): those ids once split the window at every pair,
// emitting empty segments at seek 0 that ended past the audio.
func TestWithoutTimestampsOneSegmentPerWindow(t *testing.T) {
	const textContext = 48
	tr := shortContext(t, textContext)
	pcm := jfk(t)
	end := float64(len(pcm)/160) / framesPerSecond
	for _, force := range []bool{true, false} {
		o := Options{WithoutTimestamps: true, ForceTokens: force, Temperatures: []float64{0}}
		res, err := tr.Transcribe(context.Background(), pcm, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Segments) != 1 {
			t.Fatalf("ForceTokens=%v: %d segments, want 1 over the %.2f s window: %+v", force, len(res.Segments), end, res.Segments)
		}
		s := res.Segments[0]
		if s.Seek != 0 || s.Start != 0 || s.End != end || s.Text == "" {
			t.Errorf("ForceTokens=%v: segment seek %d %.2f-%.2f %q, want seek 0 0.00-%.2f with text", force, s.Seek, s.Start, s.End, s.Text, end)
		}
		if force && len(s.Tokens) != textContext/2 {
			t.Errorf("ForceTokens: %d tokens, want MaxTokens %d", len(s.Tokens), textContext/2)
		}
		stray := 0
		for _, id := range s.Tokens {
			if id >= tr.sp.TimestampBegin {
				stray++
			}
		}
		if stray == 0 { // the case this test is about must still occur
			t.Errorf("ForceTokens=%v: no timestamp ids sampled (%v); the fixture no longer exercises stray timestamps", force, s.Tokens)
		}
	}
}
