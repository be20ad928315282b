package tokenizertest

import (
	"testing"
	"testing/fstest"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// The byte-level tokenizer.json loads as a 1,864-token Whisper vocabulary
// that encodes text byte by byte and decodes it back.
func TestByteLevelJSON(t *testing.T) {
	data, err := ByteLevelJSON(tokenizer.DefaultLanguages)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadHF(fstest.MapFS{tokenizer.HFTokenizerJSON: {Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 1864 || tok.Specials().EOT != 256 {
		t.Fatalf("%d tokens, <|endoftext|> %d; want 1864 and 256", tok.VocabSize(), tok.Specials().EOT)
	}
	text := "héllo, wörld ✓"
	ids := tok.Encode(text)
	if len(ids) != len(text) {
		t.Errorf("%q: %d ids, want one per byte (%d)", text, len(ids), len(text))
	}
	if back, err := tok.Decode(ids); err != nil || back != text {
		t.Errorf("decode = %q, %v; want %q", back, err, text)
	}
}
