package convert

import (
	"fmt"
	"os"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// Report describes a model for `whisper-encoder inspect`: an ONNX source as
// the stager sees it (without reading payloads), or a staged directory.
type Report struct {
	// Path is what was inspected; Kind is "onnx" or "staged".
	Path, Kind string
	// Config is the (inferred or staged) encoder configuration.
	Config staged.Config
	// SourcePrecision is the precision of the source weights.
	SourcePrecision staged.Precision
	// Opset and Producer describe the ONNX source.
	Opset    int64
	Producer string
	// Key is the staged directory's content key ("" for ONNX).
	Key string
	// Tensors lists every encoder tensor in canonical order.
	Tensors []TensorRow
	// Sizes are parameter counts and BF16/FP32 sizes, total and per layer.
	Sizes staged.Sizes
}

// TensorRow is one line of the tensor table.
type TensorRow struct {
	Name         string
	Shape        []int
	SourceDType  string
	Source       string
	Node         string
	IdentifiedBy string
	Transposed   bool
	// Error is the conversion error (staged directories only).
	Error *bf16.ErrorStats
}

// Inspect reports on path: a staged directory or an ONNX file. heads
// overrides the inferred head count of an ONNX file when > 0.
func Inspect(path string, heads int) (Report, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Report{}, fmt.Errorf("inspect: %w", err)
	}
	if st.IsDir() {
		return inspectStaged(path)
	}
	m, err := onnx.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("inspect: %w", err)
	}
	defer m.Close()
	p, err := plan(m, heads)
	if err != nil {
		return Report{}, fmt.Errorf("inspect %s: %w", path, err)
	}
	r := Report{
		Path: path, Kind: "onnx", Config: p.config, SourcePrecision: p.precision,
		Opset: m.Opsets[""], Producer: m.ProducerName + " " + m.ProducerVersion, Sizes: staged.SizesOf(p.config),
	}
	for _, w := range p.weights {
		r.Tensors = append(r.Tensors, TensorRow{
			Name: w.name, Shape: w.shape(), SourceDType: w.tensor.DataType.String(), Source: w.tensor.Name,
			Node: w.node, IdentifiedBy: w.via, Transposed: w.transposed,
		})
	}
	return r, nil
}

func inspectStaged(dir string) (Report, error) {
	md, err := staged.Open(dir)
	if err != nil {
		return Report{}, fmt.Errorf("inspect: %w", err)
	}
	defer md.Close()
	man := md.Manifest()
	r := Report{
		Path: dir, Kind: "staged", Config: md.Config(), SourcePrecision: man.SourcePrecision,
		Opset: man.OpsetVersion, Producer: man.Producer, Key: man.Key, Sizes: man.Sizes,
	}
	for _, t := range man.Tensors {
		e := t.Error
		r.Tensors = append(r.Tensors, TensorRow{
			Name: t.Name, Shape: t.Shape, SourceDType: t.SourceDType, Source: t.Source, Node: t.Node,
			IdentifiedBy: t.IdentifiedBy, Transposed: t.Transposed, Error: &e,
		})
	}
	return r, nil
}
