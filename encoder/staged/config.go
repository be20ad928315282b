package staged

import (
	"fmt"
)

// Config is the Whisper encoder configuration, with Hugging Face's field names
// (transformers.WhisperConfig) so config.json reads like the model's own.
type Config struct {
	// ModelType is "whisper".
	ModelType string `json:"model_type"`
	// DModel is the hidden size d (512 for base).
	DModel int `json:"d_model"`
	// EncoderLayers is the number of transformer blocks.
	EncoderLayers int `json:"encoder_layers"`
	// EncoderAttentionHeads is the number of attention heads; DModel/heads is
	// the head dimension.
	EncoderAttentionHeads int `json:"encoder_attention_heads"`
	// EncoderFFNDim is the hidden size of each block's feed-forward network.
	EncoderFFNDim int `json:"encoder_ffn_dim"`
	// NumMelBins is the number of log-mel channels of the input (80, or 128
	// for large-v3).
	NumMelBins int `json:"num_mel_bins"`
	// MaxSourcePositions is the number of positions after the stride-2 conv2
	// (1500 for 30 s windows of 3000 frames).
	MaxSourcePositions int `json:"max_source_positions"`
	// ActivationFunction is the feed-forward activation, "gelu" (exact, erf form).
	ActivationFunction string `json:"activation_function"`
	// LayerNormEps is the LayerNorm epsilon read from the graph (1e-5 in Whisper).
	LayerNormEps float64 `json:"layer_norm_eps"`
	// TorchDtype is the element type of the staged weights, "bfloat16".
	TorchDtype string `json:"torch_dtype"`
}

// HeadDim is the dimension of one attention head, DModel / EncoderAttentionHeads.
func (c Config) HeadDim() int {
	if c.EncoderAttentionHeads == 0 {
		return 0
	}
	return c.DModel / c.EncoderAttentionHeads
}

// InputFrames is the number of log-mel frames of one full input window
// (2 × MaxSourcePositions: conv2 has stride 2).
func (c Config) InputFrames() int { return 2 * c.MaxSourcePositions }

// Validate checks that every size is positive and the heads divide d_model.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"d_model", c.DModel},
		{"encoder_layers", c.EncoderLayers},
		{"encoder_attention_heads", c.EncoderAttentionHeads},
		{"encoder_ffn_dim", c.EncoderFFNDim},
		{"num_mel_bins", c.NumMelBins},
		{"max_source_positions", c.MaxSourcePositions},
	} {
		if f.v <= 0 {
			return fmt.Errorf("config: %s is %d, want > 0", f.name, f.v)
		}
	}
	if c.DModel%c.EncoderAttentionHeads != 0 {
		return fmt.Errorf("config: d_model %d is not a multiple of encoder_attention_heads %d", c.DModel, c.EncoderAttentionHeads)
	}
	if c.LayerNormEps < 0 {
		return fmt.Errorf("config: layer_norm_eps is %g, want ≥ 0", c.LayerNormEps)
	}
	return nil
}

// TensorSpec is the canonical name and shape of one encoder parameter.
type TensorSpec struct {
	Name  string
	Shape []int
	// Layer is the block index, or -1 for the stem (conv1, conv2,
	// embed_positions) and the final layer_norm.
	Layer int
}

// Tensors lists every parameter of the encoder described by c, with its
// canonical Hugging Face name and shape, stem first, then each block, then the
// final LayerNorm. Linear weights are [out, in]; conv weights [out, in, 3].
// k_proj has no bias.
func (c Config) Tensors() []TensorSpec {
	d, f, m := c.DModel, c.EncoderFFNDim, c.NumMelBins
	specs := []TensorSpec{
		{"conv1.weight", []int{d, m, 3}, -1},
		{"conv1.bias", []int{d}, -1},
		{"conv2.weight", []int{d, d, 3}, -1},
		{"conv2.bias", []int{d}, -1},
		{"embed_positions.weight", []int{c.MaxSourcePositions, d}, -1},
	}
	for i := range c.EncoderLayers {
		p := fmt.Sprintf("layers.%d.", i)
		specs = append(specs, attentionSpecs(p, "self_attn", d, i)...)
		specs = append(specs, feedForwardSpecs(p, d, f, i)...)
	}
	return append(specs,
		TensorSpec{"layer_norm.weight", []int{d}, -1},
		TensorSpec{"layer_norm.bias", []int{d}, -1},
	)
}

// NumParams is the number of encoder parameters (20,590,592 for whisper-base).
func (c Config) NumParams() int64 {
	var n int64
	for _, s := range c.Tensors() {
		n += int64(numElements(s.Shape))
	}
	return n
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// attentionSpecs lists one attention sublayer of block layer (prefix p, e.g.
// "layers.3."; attn "self_attn" or "encoder_attn"): projections, then its
// pre-norm LayerNorm. k_proj has no bias.
func attentionSpecs(p, attn string, d, layer int) []TensorSpec {
	a := p + attn + "."
	return []TensorSpec{
		{a + "k_proj.weight", []int{d, d}, layer},
		{a + "v_proj.weight", []int{d, d}, layer},
		{a + "v_proj.bias", []int{d}, layer},
		{a + "q_proj.weight", []int{d, d}, layer},
		{a + "q_proj.bias", []int{d}, layer},
		{a + "out_proj.weight", []int{d, d}, layer},
		{a + "out_proj.bias", []int{d}, layer},
		{p + attn + "_layer_norm.weight", []int{d}, layer},
		{p + attn + "_layer_norm.bias", []int{d}, layer},
	}
}

// feedForwardSpecs lists the MLP of block layer (d → f → d) and its
// LayerNorm.
func feedForwardSpecs(p string, d, f, layer int) []TensorSpec {
	return []TensorSpec{
		{p + "fc1.weight", []int{f, d}, layer},
		{p + "fc1.bias", []int{f}, layer},
		{p + "fc2.weight", []int{d, f}, layer},
		{p + "fc2.bias", []int{d}, layer},
		{p + "final_layer_norm.weight", []int{d}, layer},
		{p + "final_layer_norm.bias", []int{d}, layer},
	}
}
