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
	f := microFixture(t)
	dir := t.TempDir()
	const textContext = 48
	if err := converttest.ShortContext(microDir, dir, textContext); err != nil {
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
