package staged

import (
	"strconv"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// Precision names the element type of a source model's weights.
type Precision string

// Source precisions the stager reads, and the staged target precision.
const (
	Float32  Precision = "float32"
	Float16  Precision = "float16"
	Int8     Precision = "int8"  // dynamic int8 (MatMulInteger, ConvInteger)
	Uint8    Precision = "uint8" // dynamic uint8 (MatMulInteger, ConvInteger)
	Q4       Precision = "q4"    // com.microsoft::MatMulNBits, 4 bits
	BFloat16 Precision = "bfloat16"
)

// Lossy reports whether staging from p cannot reproduce the original fp32
// model's BF16 weights (every source precision but float32).
func (p Precision) Lossy() bool { return p != Float32 }

// Manifest records where a staged model came from and what it holds.
type Manifest struct {
	// FormatVersion is the staged-directory format version (FormatVersion).
	FormatVersion int `json:"formatVersion"`
	// Key is the content key naming the staged directory.
	Key string `json:"key"`
	// Source is the source as given (path, URL or hf:// reference).
	Source string `json:"source"`
	// SourceSHA256 is the hex sha256 of the source ONNX file.
	SourceSHA256 string `json:"sourceSHA256"`
	// SourceSize is the size of the source ONNX file in bytes.
	SourceSize int64 `json:"sourceSize"`
	// ExternalData lists the source's external-data files (empty when the
	// weights are inside the ONNX file).
	ExternalData []SourceFile `json:"externalData,omitempty"`
	// SourcePrecision is the element type of the source weights.
	SourcePrecision Precision `json:"sourcePrecision"`
	// LossySource is true when SourcePrecision is not float32.
	LossySource bool `json:"lossySource"`
	// Precision is the staged element type, "bfloat16".
	Precision Precision `json:"precision"`
	// ConverterVersion identifies the program that staged the directory.
	ConverterVersion string `json:"converterVersion"`
	// OpsetVersion is the source graph's default-domain opset.
	OpsetVersion int64 `json:"opsetVersion,omitempty"`
	// Producer is the source's producer_name and producer_version.
	Producer string `json:"producer,omitempty"`
	// StagedAt is when the directory was written (UTC).
	StagedAt time.Time `json:"stagedAt"`
	// Tensors has one record per staged tensor, in file order.
	Tensors []TensorRecord `json:"tensors"`
	// Sizes are the parameter counts and byte sizes, total and per layer.
	Sizes Sizes `json:"sizes"`
	// SourceFiles lists every file of a model-repository source (sorted by
	// name; the content key covers them all). Empty for a single ONNX file.
	SourceFiles []SourceFile `json:"sourceFiles,omitempty"`
	// Capabilities is what the entry can serve (absent in entries staged
	// before whole models: those encode only).
	Capabilities Capabilities `json:"capabilities"`
	// Decoder describes the staged decoder (whole models only).
	Decoder *DecoderInfo `json:"decoder,omitempty"`
	// Tokenizer says where the tokenizer comes from (whole models only).
	Tokenizer *TokenizerInfo `json:"tokenizer,omitempty"`
}

// SourceFile is one file of a multi-file source.
type SourceFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// TensorRecord describes one staged tensor and how it was made.
type TensorRecord struct {
	// Name is the canonical name (conv1.weight, layers.0.fc1.weight, ...).
	Name string `json:"name"`
	// Shape is the staged shape ([out, in] for linear weights).
	Shape []int `json:"shape"`
	// DType is the staged safetensors dtype, "BF16".
	DType string `json:"dtype"`
	// SHA256 is the hex sha256 of the staged tensor bytes.
	SHA256 string `json:"sha256"`
	// Source is the name of the ONNX initializer it came from.
	Source string `json:"source"`
	// SourceDType is the ONNX element type of that initializer (FLOAT, ...).
	SourceDType string `json:"sourceDType"`
	// Node is the graph node through which the tensor was identified.
	Node string `json:"node,omitempty"`
	// IdentifiedBy says how: "node name", "bias" (the MatMul → Add of a named
	// bias), "shared input" (k_proj beside q_proj and v_proj), "initializer
	// name" or "graph order".
	IdentifiedBy string `json:"identifiedBy,omitempty"`
	// Transposed is true when the source was stored [in, out].
	Transposed bool `json:"transposed,omitempty"`
	// Error is the error of the conversion to BF16, measured against the
	// source values after dequantization.
	Error bf16.ErrorStats `json:"error"`
}

// Sizes counts parameters and bytes, in total and per layer.
type Sizes struct {
	Params    int64       `json:"params"`
	BF16Bytes int64       `json:"bf16Bytes"`
	FP32Bytes int64       `json:"fp32Bytes"`
	FileBytes int64       `json:"fileBytes"`
	Layers    []LayerSize `json:"layers"`
}

// LayerSize counts the parameters of one part of the model: "stem" (conv1,
// conv2, embed_positions), "layers.N", or "layer_norm".
type LayerSize struct {
	Name      string `json:"name"`
	Params    int64  `json:"params"`
	BF16Bytes int64  `json:"bf16Bytes"`
	FP32Bytes int64  `json:"fp32Bytes"`
}

// SizesOf computes the parameter counts and byte sizes of the encoder c.
func SizesOf(c Config) Sizes {
	var s Sizes
	index := map[string]int{}
	for _, t := range c.Tensors() {
		name := partName(t)
		i, ok := index[name]
		if !ok {
			i = len(s.Layers)
			index[name] = i
			s.Layers = append(s.Layers, LayerSize{Name: name})
		}
		n := int64(numElements(t.Shape))
		s.Layers[i].Params += n
		s.Layers[i].BF16Bytes += 2 * n
		s.Layers[i].FP32Bytes += 4 * n
		s.Params += n
	}
	s.BF16Bytes, s.FP32Bytes = 2*s.Params, 4*s.Params
	return s
}

func partName(t TensorSpec) string {
	switch {
	case t.Layer >= 0:
		return "layers." + strconv.Itoa(t.Layer)
	case t.Name == "layer_norm.weight" || t.Name == "layer_norm.bias":
		return "layer_norm"
	default:
		return "stem"
	}
}
