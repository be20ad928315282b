package decoder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Config is the decoder's part of a Hugging Face WhisperConfig
// (config.json), with its field names.
type Config struct {
	// DModel is the hidden size d (512 for base), shared with the encoder.
	DModel int `json:"d_model"`
	// Layers is the number of decoder blocks (decoder_layers).
	Layers int `json:"decoder_layers"`
	// Heads is the number of attention heads (decoder_attention_heads);
	// DModel/Heads is the head dimension (64 in every Whisper size).
	Heads int `json:"decoder_attention_heads"`
	// FFN is the hidden size of each block's MLP (decoder_ffn_dim).
	FFN int `json:"decoder_ffn_dim"`
	// Vocab is the number of tokens (51865 multilingual, 51864 .en, 51866 large-v3).
	Vocab int `json:"vocab_size"`
	// MaxTargetPositions is the text context: the rows of the positional
	// table (448), the most tokens a sequence can hold.
	MaxTargetPositions int `json:"max_target_positions"`
	// MaxSourcePositions is the encoder output length of a 30 s window (1500),
	// the most positions a cross-attention window can have.
	MaxSourcePositions int `json:"max_source_positions"`
	// ActivationFunction is the MLP activation; only "gelu" (exact, erf form).
	ActivationFunction string `json:"activation_function"`
	// ScaleEmbedding multiplies token embeddings by √d; Whisper has false.
	ScaleEmbedding bool `json:"scale_embedding"`
}

// HeadDim is DModel/Heads.
func (c Config) HeadDim() int {
	if c.Heads == 0 {
		return 0
	}
	return c.DModel / c.Heads
}

// Validate checks that every size is positive and that the model is one
// this decoder implements.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"d_model", c.DModel}, {"decoder_layers", c.Layers}, {"decoder_attention_heads", c.Heads},
		{"decoder_ffn_dim", c.FFN}, {"vocab_size", c.Vocab}, {"max_target_positions", c.MaxTargetPositions},
		{"max_source_positions", c.MaxSourcePositions},
	} {
		if f.v <= 0 {
			return fmt.Errorf("config: %s is %d, want > 0", f.name, f.v)
		}
	}
	switch {
	case c.DModel%c.Heads != 0:
		return fmt.Errorf("config: d_model %d is not a multiple of decoder_attention_heads %d", c.DModel, c.Heads)
	case c.ActivationFunction != "" && c.ActivationFunction != "gelu":
		return fmt.Errorf("config: activation_function %q, this decoder implements gelu", c.ActivationFunction)
	case c.ScaleEmbedding:
		return fmt.Errorf("config: scale_embedding is true, Whisper decoders have false")
	}
	return nil
}

// ReadConfig reads the decoder configuration from a Hugging Face
// config.json in dir.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("decoder config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("decoder config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SequenceBytes is the memory of a sequence's self-attention cache when it
// holds n tokens: keys and values of every layer and head in bf16, grown
// by blocks of SelfBlock positions.
func (c Config) SequenceBytes(n int) int {
	blocks := (n + SelfBlock - 1) / SelfBlock
	return c.Layers * c.Heads * blocks * kvLen(SelfBlock, c.HeadDim()) * 2
}

// CrossBytes is the memory of a window's cross-attention keys and values
// over p encoder positions (bf16, every layer and head).
func (c Config) CrossBytes(p int) int {
	n := 0
	for j0 := 0; j0 < p; j0 += CrossBlock {
		n += kvLen(min(CrossBlock, p-j0), c.HeadDim())
	}
	return c.Layers * c.Heads * n * 2
}
