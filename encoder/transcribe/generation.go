package transcribe

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// GenerationConfigFile is the Hugging Face file GenerationConfig is read from.
const GenerationConfigFile = "generation_config.json"

// DefaultMaxInitialTimestampIndex is Whisper's max_initial_timestamp: the
// first timestamp of a window may be at most 1.0 s (50 steps of 0.02 s).
const DefaultMaxInitialTimestampIndex = 50

// GenerationConfig is what the decoding rules take from a model's
// generation_config.json (Hugging Face's names). forced_decoder_ids is
// ignored: the SOT sequence is built from the request's options.
type GenerationConfig struct {
	// AlignmentHeads are the cross-attention heads whose weights give word
	// timestamps.
	AlignmentHeads []decoder.Head
	// BeginSuppressTokens are banned at the first sampled step
	// (Whisper's SuppressBlank: " " and <|endoftext|>).
	BeginSuppressTokens []int
	// SuppressTokens are banned at every step (Whisper's "-1" set).
	SuppressTokens []int
	// LangToID maps "<|en|>" to its token id; TaskToID "transcribe" and
	// "translate" to theirs.
	LangToID map[string]int
	TaskToID map[string]int
	// NoTimestampsTokenID is <|notimestamps|>.
	NoTimestampsTokenID int
	// MaxInitialTimestampIndex bounds a window's first timestamp, in steps
	// of 0.02 s above <|0.00|> (50: 1.0 s).
	MaxInitialTimestampIndex int
	// IsMultilingual is false for the .en models: their prompt has no
	// language or task token.
	IsMultilingual bool
	// DecoderStartTokenID is <|startoftranscript|>.
	DecoderStartTokenID int
}

// genFile is generation_config.json as it is written; pointers tell a
// missing key from a zero.
type genFile struct {
	AlignmentHeads           [][]int        `json:"alignment_heads"`
	BeginSuppressTokens      []int          `json:"begin_suppress_tokens"`
	SuppressTokens           []int          `json:"suppress_tokens"`
	LangToID                 map[string]int `json:"lang_to_id"`
	TaskToID                 map[string]int `json:"task_to_id"`
	NoTimestampsTokenID      *int           `json:"no_timestamps_token_id"`
	MaxInitialTimestampIndex *int           `json:"max_initial_timestamp_index"`
	IsMultilingual           *bool          `json:"is_multilingual"`
	DecoderStartTokenID      *int           `json:"decoder_start_token_id"`
}

// DefaultGenerationConfig is the configuration openai/whisper uses with tk's
// vocabulary, for a model directory without generation_config.json: no
// alignment heads (word timestamps then need them from elsewhere).
func DefaultGenerationConfig(tk *tokenizer.Tokenizer) GenerationConfig {
	sp := tk.Specials()
	g := GenerationConfig{
		BeginSuppressTokens:      tk.BlankSuppressTokens(),
		SuppressTokens:           tk.SuppressTokens(),
		LangToID:                 map[string]int{},
		TaskToID:                 map[string]int{},
		NoTimestampsTokenID:      sp.NoTimestamps,
		MaxInitialTimestampIndex: DefaultMaxInitialTimestampIndex,
		IsMultilingual:           tk.Multilingual(),
		DecoderStartTokenID:      sp.SOT,
	}
	if g.IsMultilingual {
		for i, id := range tk.LanguageTokens() {
			g.LangToID["<|"+tk.Languages()[i]+"|>"] = id
		}
		g.TaskToID[string(tokenizer.Transcribe)] = sp.Transcribe
		g.TaskToID[string(tokenizer.Translate)] = sp.Translate
	}
	return g
}

// ReadGenerationConfig reads dir/generation_config.json, checked against
// tk; a directory without the file gets DefaultGenerationConfig(tk).
func ReadGenerationConfig(dir string, tk *tokenizer.Tokenizer) (GenerationConfig, error) {
	path := filepath.Join(dir, GenerationConfigFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultGenerationConfig(tk), nil
	}
	if err != nil {
		return GenerationConfig{}, fmt.Errorf("transcribe: read generation config: %w", err)
	}
	g, err := ParseGenerationConfig(b, tk)
	if err != nil {
		return GenerationConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// ParseGenerationConfig reads a generation_config.json. Keys it lacks take
// DefaultGenerationConfig(tk)'s values; every token id must lie in tk's
// vocabulary, and the special tokens must be tk's.
func ParseGenerationConfig(data []byte, tk *tokenizer.Tokenizer) (GenerationConfig, error) {
	var f genFile
	if err := json.Unmarshal(data, &f); err != nil {
		return GenerationConfig{}, fmt.Errorf("generation config: %w", err)
	}
	g := DefaultGenerationConfig(tk)
	for i, h := range f.AlignmentHeads {
		if len(h) != 2 || h[0] < 0 || h[1] < 0 {
			return g, fmt.Errorf("generation config: alignment_heads[%d]: expected [layer, head] (two non-negative ints), found %v", i, h)
		}
		g.AlignmentHeads = append(g.AlignmentHeads, decoder.Head{Layer: h[0], Head: h[1]})
	}
	if f.BeginSuppressTokens != nil {
		g.BeginSuppressTokens = f.BeginSuppressTokens
	}
	if f.SuppressTokens != nil {
		g.SuppressTokens = f.SuppressTokens
	}
	if f.LangToID != nil {
		g.LangToID = f.LangToID
	}
	if f.TaskToID != nil {
		g.TaskToID = f.TaskToID
	}
	setInt(&g.NoTimestampsTokenID, f.NoTimestampsTokenID)
	setInt(&g.MaxInitialTimestampIndex, f.MaxInitialTimestampIndex)
	setInt(&g.DecoderStartTokenID, f.DecoderStartTokenID)
	if f.IsMultilingual != nil {
		g.IsMultilingual = *f.IsMultilingual
	}
	return g, g.Check(tk)
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

// Check verifies g against tk: ids in the vocabulary, and the special
// tokens (start, no-timestamps, languages, tasks) where tk has them.
func (g GenerationConfig) Check(tk *tokenizer.Tokenizer) error {
	n := tk.VocabSize()
	inVocab := func(what string, ids []int) error {
		for i, id := range ids {
			if id < 0 || id >= n {
				return fmt.Errorf("generation config: %s[%d]: expected a token id in [0, %d), found %d", what, i, n, id)
			}
		}
		return nil
	}
	if err := inVocab("suppress_tokens", g.SuppressTokens); err != nil {
		return err
	}
	if err := inVocab("begin_suppress_tokens", g.BeginSuppressTokens); err != nil {
		return err
	}
	sp := tk.Specials()
	if err := same("decoder_start_token_id", sp.SOT, g.DecoderStartTokenID); err != nil {
		return err
	}
	if err := same("no_timestamps_token_id", sp.NoTimestamps, g.NoTimestampsTokenID); err != nil {
		return err
	}
	if g.MaxInitialTimestampIndex < 0 || g.MaxInitialTimestampIndex >= tokenizer.NumTimestamps {
		return fmt.Errorf("generation config: max_initial_timestamp_index: expected 0…%d, found %d", tokenizer.NumTimestamps-1, g.MaxInitialTimestampIndex)
	}
	if g.IsMultilingual && tk.NumLanguages() == 0 {
		return fmt.Errorf("generation config: is_multilingual is true but the vocabulary (%s) has no language tokens", tk.Name())
	}
	if err := checkLangs(g.LangToID, tk); err != nil {
		return err
	}
	for _, task := range sortedKeys(g.TaskToID) {
		want := map[string]int{string(tokenizer.Transcribe): sp.Transcribe, string(tokenizer.Translate): sp.Translate}
		w, ok := want[task]
		if !ok {
			return fmt.Errorf("generation config: task_to_id: expected transcribe or translate, found %q", task)
		}
		if err := same("task_to_id["+task+"]", w, g.TaskToID[task]); err != nil {
			return err
		}
	}
	return nil
}

func same(what string, want, got int) error {
	if want != got {
		return fmt.Errorf("generation config: %s: expected %d (the tokenizer's), found %d", what, want, got)
	}
	return nil
}

func checkLangs(m map[string]int, tk *tokenizer.Tokenizer) error {
	for _, tok := range sortedKeys(m) {
		code := tok
		if len(tok) > 4 && tok[:2] == "<|" && tok[len(tok)-2:] == "|>" {
			code = tok[2 : len(tok)-2]
		}
		want, err := tk.LanguageToken(code)
		if err != nil {
			return fmt.Errorf("generation config: lang_to_id[%q]: %w", tok, err)
		}
		if err := same("lang_to_id["+tok+"]", want, m[tok]); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
