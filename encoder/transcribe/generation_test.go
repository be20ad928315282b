package transcribe

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

func TestReadGenerationConfig(t *testing.T) {
	tk := microFixture(t).tk
	g, err := ReadGenerationConfig(microDir, tk)
	if err != nil {
		t.Fatal(err)
	}
	if want := []decoder.Head{{Layer: 1, Head: 0}, {Layer: 1, Head: 2}, {Layer: 1, Head: 3}}; !reflect.DeepEqual(g.AlignmentHeads, want) {
		t.Errorf("alignment heads %v, want %v", g.AlignmentHeads, want)
	}
	if !reflect.DeepEqual(g.BeginSuppressTokens, []int{32, 256}) || len(g.SuppressTokens) != 29 || g.NoTimestampsTokenID != 362 ||
		g.MaxInitialTimestampIndex != 50 || !g.IsMultilingual || g.DecoderStartTokenID != 257 || g.LangToID["<|de|>"] != 260 ||
		g.TaskToID["translate"] != 357 {
		t.Errorf("hf-micro generation config read as %+v", g)
	}

	// no file: the tokenizer's defaults
	d, err := ReadGenerationConfig(t.TempDir(), tk)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, DefaultGenerationConfig(tk)) || d.NoTimestampsTokenID != 362 || len(d.SuppressTokens) == 0 || d.MaxInitialTimestampIndex != 50 {
		t.Errorf("defaults %+v", d)
	}
	multi, err := tokenizer.Builtin(tokenizer.Multilingual, tokenizer.DefaultLanguages)
	if err != nil {
		t.Fatal(err)
	}
	if g := DefaultGenerationConfig(multi); !g.IsMultilingual || g.LangToID["<|en|>"] != 50259 || g.TaskToID["transcribe"] != 50359 || g.DecoderStartTokenID != 50258 {
		t.Errorf("multilingual defaults %+v", g)
	}
	en, err := tokenizer.Builtin(tokenizer.GPT2, tokenizer.DefaultLanguages)
	if err != nil {
		t.Fatal(err)
	}
	if g := DefaultGenerationConfig(en); g.IsMultilingual || len(g.LangToID) != 0 {
		t.Errorf(".en defaults %+v", g)
	}
}

func TestGenerationConfigErrors(t *testing.T) {
	tk := microFixture(t).tk
	for _, c := range []struct{ json, want string }{
		{`{`, "unexpected end"},
		{`{"suppress_tokens": [5000]}`, "suppress_tokens[0]: expected a token id in [0, 1864), found 5000"},
		{`{"begin_suppress_tokens": [-1]}`, "begin_suppress_tokens[0]"},
		{`{"no_timestamps_token_id": 50363}`, "no_timestamps_token_id: expected 362 (the tokenizer's), found 50363"},
		{`{"decoder_start_token_id": 1}`, "decoder_start_token_id: expected 257"},
		{`{"alignment_heads": [[1]]}`, "alignment_heads[0]: expected [layer, head]"},
		{`{"max_initial_timestamp_index": 2000}`, "max_initial_timestamp_index: expected 0…1500, found 2000"},
		{`{"lang_to_id": {"<|en|>": 259}}`, `lang_to_id[<|en|>]: expected 258`},
		{`{"lang_to_id": {"<|xx|>": 259}}`, `lang_to_id["<|xx|>"]`},
		{`{"task_to_id": {"summarise": 358}}`, `task_to_id: expected transcribe or translate, found "summarise"`},
		{`{"task_to_id": {"translate": 358}}`, `task_to_id[translate]: expected 357`},
	} {
		_, err := ParseGenerationConfig([]byte(c.json), tk)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to say %q", c.json, err, c.want)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, GenerationConfigFile), []byte(`{"suppress_tokens": "no"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadGenerationConfig(dir, tk); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("bad file: err %v, want it to name the file", err)
	}
}
