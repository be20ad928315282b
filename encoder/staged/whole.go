package staged

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// Files of a whole-model entry (a model repository staged with its decoder),
// beside the encoder's WeightsFile, ConfigFile and ManifestFile:
//
//	decoder.safetensors   BF16 decoder tensors under names relative to the
//	                      decoder (embed_tokens.weight, layers.0.fc1.weight, …)
//	hf/config.json        the source's config.json (validated JSON)
//	hf/generation_config.json, hf/preprocessor_config.json (when the source has them)
//	hf/tokenizer.json …   the source's tokenizer files (when it has them)
const (
	DecoderFile          = "decoder.safetensors"
	HFDir                = "hf"
	GenerationConfigFile = "generation_config.json"
)

// Tokenizer kinds recorded in the manifest.
const (
	// TokenizerHF: the source's Hugging Face tokenizer files, copied into HFDir.
	TokenizerHF = "hf"
	// TokenizerBuiltin: the source had none; Whisper's built-in vocabulary
	// for the model's vocabulary size (TokenizerInfo.Name says which).
	TokenizerBuiltin = "builtin"
)

// Capabilities is what a staged entry can serve, with the JSON shape of
// transcribe.Capabilities.
type Capabilities struct {
	Encode     bool     `json:"encode"`
	Transcribe bool     `json:"transcribe"`
	Translate  bool     `json:"translate"`
	Languages  []string `json:"languages,omitempty"`
}

// Tasks lists the capabilities as words: "encode", "transcribe", "translate".
func (c Capabilities) Tasks() []string {
	var out []string
	for _, t := range []struct {
		ok   bool
		name string
	}{{c.Encode, "encode"}, {c.Transcribe, "transcribe"}, {c.Translate, "translate"}} {
		if t.ok {
			out = append(out, t.name)
		}
	}
	return out
}

// DecoderInfo describes the staged decoder of a whole-model entry.
type DecoderInfo struct {
	// Layers, Heads, FFN, Vocab and MaxTargetPositions are the decoder's
	// shape (from the source's config.json).
	Layers             int `json:"layers"`
	Heads              int `json:"heads"`
	FFN                int `json:"ffn"`
	Vocab              int `json:"vocab"`
	MaxTargetPositions int `json:"maxTargetPositions"`
	// Tensors has one record per staged decoder tensor, in file order.
	Tensors []TensorRecord `json:"tensors"`
}

// TokenizerInfo says where the entry's tokenizer comes from.
type TokenizerInfo struct {
	// Kind is TokenizerHF or TokenizerBuiltin.
	Kind string `json:"kind"`
	// Name is the built-in vocabulary ("multilingual", "gpt2") or the HF
	// file the tokenizer was read from.
	Name string `json:"name"`
	// Files are the tokenizer files copied into HFDir (Kind TokenizerHF).
	Files []string `json:"files,omitempty"`
	// VocabSize is the tokenizer's size (equal to the decoder's vocabulary).
	VocabSize int `json:"vocabSize"`
	// NumLanguages is the number of language tokens.
	NumLanguages int `json:"numLanguages"`
}

// DecoderTensorSpecs lists the decoder tensors of a Whisper model (names
// relative to the decoder, shapes [out, in] for linear weights), in the
// order they are staged. Whisper ties the output projection to
// embed_tokens, and k_proj has no bias.
func DecoderTensorSpecs(d, layers, ffn, vocab, maxTarget int) []TensorSpec {
	specs := []TensorSpec{
		{"embed_tokens.weight", []int{vocab, d}, -1},
		{"embed_positions.weight", []int{maxTarget, d}, -1},
	}
	for i := range layers {
		p := fmt.Sprintf("layers.%d.", i)
		specs = append(specs, attentionSpecs(p, "self_attn", d, i)...)
		specs = append(specs, attentionSpecs(p, "encoder_attn", d, i)...)
		specs = append(specs, feedForwardSpecs(p, d, ffn, i)...)
	}
	return append(specs,
		TensorSpec{"layer_norm.weight", []int{d}, -1},
		TensorSpec{"layer_norm.bias", []int{d}, -1},
	)
}

// Specs is the tensor list the decoder info implies for hidden size d.
func (di DecoderInfo) Specs(d int) []TensorSpec {
	return DecoderTensorSpecs(d, di.Layers, di.FFN, di.Vocab, di.MaxTargetPositions)
}

// openDecoder maps decoder.safetensors of a whole-model entry and checks it
// against the manifest.
func (m *Model) openDecoder() error {
	di := m.manifest.Decoder
	if di == nil {
		return nil
	}
	f, err := safetensors.Open(filepath.Join(m.dir, DecoderFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("incomplete: %s records a decoder, no %s", ManifestFile, DecoderFile)
		}
		return err
	}
	specs := di.Specs(m.config.DModel)
	if len(f.Tensors()) != len(specs) || len(di.Tensors) != len(specs) {
		_ = f.Close() // a read-only mapping: nothing to flush
		return fmt.Errorf("%s holds %d tensors, %s lists %d, the decoder shape (%d layers, vocab %d) implies %d",
			DecoderFile, len(f.Tensors()), ManifestFile, len(di.Tensors), di.Layers, di.Vocab, len(specs))
	}
	for _, s := range specs {
		t, err := f.Tensor(s.Name)
		switch {
		case err != nil:
			err = fmt.Errorf("%s: no tensor %s %v", DecoderFile, s.Name, s.Shape)
		case t.DType != safetensors.BF16:
			err = fmt.Errorf("%s: tensor %s: dtype %s, want BF16", DecoderFile, s.Name, t.DType)
		case !slices.Equal(t.Shape, s.Shape):
			err = fmt.Errorf("%s: tensor %s: shape %v, want %v", DecoderFile, s.Name, t.Shape, s.Shape)
		}
		if err != nil {
			_ = f.Close() // a read-only mapping: nothing to flush
			return err
		}
	}
	m.decoder = f
	return nil
}

// HasDecoder reports whether the entry holds a text decoder.
func (m *Model) HasDecoder() bool { return m.decoder != nil }

// Capabilities is what the entry can serve: every entry encodes; one with a
// decoder and a tokenizer transcribes, and translates when multilingual.
func (m *Model) Capabilities() Capabilities {
	c := m.manifest.Capabilities
	c.Encode = true
	if m.decoder == nil {
		c.Transcribe, c.Translate, c.Languages = false, false, nil
	}
	return c
}

// DecoderWeights is the staged decoder as a decoder.Source: zero-copy BF16
// views of the memory-mapped decoder.safetensors.
type DecoderWeights struct{ m *Model }

// Decoder returns the staged decoder's weights, or an error naming what the
// entry can do when it has none.
func (m *Model) Decoder() (*DecoderWeights, error) {
	if m.decoder == nil {
		return nil, fmt.Errorf("staged dir %s: no decoder: the entry was staged from an encoder-only source and can %v", m.dir, m.Capabilities().Tasks())
	}
	return &DecoderWeights{m}, nil
}

// Tensor returns the decoder tensor name (relative to the decoder) as bf16
// bits; the slice stays valid until the Model is closed.
func (d *DecoderWeights) Tensor(name string) ([]int, []uint16, error) {
	if d.m.decoder == nil {
		return nil, nil, fmt.Errorf("staged dir %s: decoder tensor %s: model is closed", d.m.dir, name)
	}
	t, err := d.m.decoder.Tensor(name)
	if err != nil {
		return nil, nil, fmt.Errorf("staged dir %s: %s: %w", d.m.dir, DecoderFile, err)
	}
	data, err := t.Uint16s()
	if err != nil {
		return nil, nil, fmt.Errorf("staged dir %s: %w", d.m.dir, err)
	}
	return slices.Clone(t.Shape), data, nil
}

// Release drops the resident pages of decoder tensor name from the process
// once the caller has copied it (safetensors.File.Release); its view stays
// valid.
func (d *DecoderWeights) Release(name string) error {
	if d.m.decoder == nil {
		return fmt.Errorf("staged dir %s: release decoder tensor %s: model is closed", d.m.dir, name)
	}
	if err := d.m.decoder.Release(name); err != nil {
		return fmt.Errorf("staged dir %s: %w", d.m.dir, err)
	}
	return nil
}

// HFDir is the path of the copied Hugging Face files (config.json,
// generation_config.json, tokenizer files) of a whole-model entry;
// decoder.ReadConfig reads the decoder's configuration there.
func (m *Model) HFDir() string { return filepath.Join(m.dir, HFDir) }

// GenerationConfig returns the bytes of the source's generation_config.json
// (alignment heads, suppressed tokens, …), or nil when it had none.
func (m *Model) GenerationConfig() ([]byte, error) {
	if m.decoder == nil {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(m.HFDir(), GenerationConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("staged dir %s: %w", m.dir, err)
	}
	return b, nil
}

// Tokenizer loads the entry's tokenizer: the copied Hugging Face files, or
// the built-in vocabulary the manifest names. It checks the size against
// the decoder's vocabulary.
func (m *Model) Tokenizer() (*tokenizer.Tokenizer, error) {
	ti := m.manifest.Tokenizer
	if m.decoder == nil || ti == nil {
		return nil, fmt.Errorf("staged dir %s: no tokenizer: the entry has no decoder", m.dir)
	}
	var tok *tokenizer.Tokenizer
	var err error
	switch ti.Kind {
	case TokenizerHF:
		tok, err = tokenizer.LoadHF(os.DirFS(m.HFDir()))
	case TokenizerBuiltin:
		tok, err = tokenizer.ForVocabSize(m.manifest.Decoder.Vocab)
	default:
		err = fmt.Errorf("tokenizer kind %q, want %q or %q", ti.Kind, TokenizerHF, TokenizerBuiltin)
	}
	if err != nil {
		return nil, fmt.Errorf("staged dir %s: tokenizer: %w", m.dir, err)
	}
	if tok.VocabSize() != m.manifest.Decoder.Vocab {
		return nil, fmt.Errorf("staged dir %s: tokenizer has %d tokens, the decoder's vocabulary %d", m.dir, tok.VocabSize(), m.manifest.Decoder.Vocab)
	}
	return tok, nil
}

// CapabilitiesOf is what a decoder with tokenizer tok can do: transcribe,
// translate when multilingual, in tok's languages ("en" for .en models).
func CapabilitiesOf(tok *tokenizer.Tokenizer) Capabilities {
	c := Capabilities{Encode: true, Transcribe: true, Translate: tok.Multilingual()}
	if tok.Multilingual() {
		c.Languages = tok.Languages()
	} else {
		c.Languages = []string{"en"}
	}
	return c
}

// ValidJSON reports whether b is one JSON object (for copied config files).
func ValidJSON(b []byte) error {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	return nil
}
