package convert

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// Report describes a model for `whisper-encoder inspect`: an ONNX source or
// a model repository as the stager sees it (without converting anything), or
// a staged directory.
type Report struct {
	// Path is what was inspected; Kind is "onnx", "model" (a model
	// repository in Hugging Face's layout) or "staged".
	Path, Kind string
	// Capabilities is what a server of the model can do.
	Capabilities staged.Capabilities
	// Decoder is the text decoder's shape (whole models only).
	Decoder *DecoderSummary `json:",omitempty"`
	// Tokenizer says where the tokenizer comes from (whole models only).
	Tokenizer *staged.TokenizerInfo `json:",omitempty"`
	// Config is the (inferred or staged) encoder configuration.
	Config staged.Config
	// SourcePrecision is the precision of the source weights.
	SourcePrecision staged.Precision
	// Opset and Producer describe the ONNX source.
	Opset    int64
	Producer string
	// Key is the staged directory's content key ("" for ONNX).
	Key string
	// Tensors lists every encoder tensor in canonical order, then (whole
	// models) every decoder tensor, named "decoder.…".
	Tensors []TensorRow
	// Sizes are parameter counts and BF16/FP32 sizes, total and per layer.
	Sizes staged.Sizes
}

// DecoderSummary is the shape and size of a whole model's decoder.
type DecoderSummary struct {
	Layers, Heads, FFN, Vocab, MaxTargetPositions int
	// Params is the number of decoder parameters; BF16Bytes their staged size.
	Params, BF16Bytes int64
}

func decoderSummary(di staged.DecoderInfo, d int) *DecoderSummary {
	s := &DecoderSummary{Layers: di.Layers, Heads: di.Heads, FFN: di.FFN, Vocab: di.Vocab, MaxTargetPositions: di.MaxTargetPositions}
	for _, sp := range di.Specs(d) {
		s.Params += int64(numElems(sp.Shape))
	}
	s.BF16Bytes = 2 * s.Params
	return s
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

// Inspect reports on path: a staged directory, a model repository
// directory or an ONNX file. heads overrides the inferred head count of an
// ONNX file when > 0.
func Inspect(path string, heads int) (Report, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Report{}, fmt.Errorf("inspect: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, staged.ManifestFile)); err != nil {
			return inspectRepo(path)
		}
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
		Capabilities: staged.Capabilities{Encode: true},
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
		Capabilities: md.Capabilities(), Tokenizer: man.Tokenizer,
	}
	records := man.Tensors
	if md.HasDecoder() {
		r.Decoder = decoderSummary(*man.Decoder, md.Config().DModel)
		for _, t := range man.Decoder.Tensors {
			t.Name = "decoder." + t.Name
			records = append(slices.Clip(records), t)
		}
	}
	for _, t := range records {
		e := t.Error
		r.Tensors = append(r.Tensors, TensorRow{
			Name: t.Name, Shape: t.Shape, SourceDType: t.SourceDType, Source: t.Source, Node: t.Node,
			IdentifiedBy: t.IdentifiedBy, Transposed: t.Transposed, Error: &e,
		})
	}
	return r, nil
}

// inspectRepo reports on a model repository directory as stageRepo would
// stage it: config, weights (names, shapes, dtypes), tokenizer.
func inspectRepo(dir string) (Report, error) {
	r, err := inspectRepoErr(dir)
	if err != nil {
		return Report{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	return r, nil
}

func inspectRepoErr(dir string) (Report, error) {
	repo, err := localRepo(dir)
	if err != nil {
		return Report{}, err
	}
	cfgJSON, err := os.ReadFile(filepath.Join(dir, repoConfig))
	if err != nil {
		return Report{}, err
	}
	enc, dec, err := parseRepoConfig(cfgJSON)
	if err != nil {
		return Report{}, err
	}
	if repo.onnx != nil {
		return inspectONNXRepo(dir, repo.onnx, enc, dec)
	}
	w, err := openRepoWeights(dir, repo.shards)
	if err != nil {
		return Report{}, err
	}
	defer w.close()
	encPrefix, decPrefix, err := w.prefixes()
	if err != nil {
		return Report{}, err
	}
	encSpecs, decSpecs := enc.Tensors(), dec.Specs(enc.DModel)
	if err := errors.Join(w.checkTied(decPrefix), w.check(encPrefix, encSpecs, enc), w.check(decPrefix, decSpecs, enc)); err != nil {
		return Report{}, err
	}
	tok, err := repoTokenizer(os.DirFS(dir), dec.Vocab, nil)
	if err != nil {
		return Report{}, err
	}
	r := Report{
		Path: dir, Kind: "model", Config: enc, SourcePrecision: w.precision(encPrefix, encSpecs, decPrefix, decSpecs),
		Producer: "huggingface safetensors", Sizes: staged.SizesOf(enc), Capabilities: staged.CapabilitiesOf(tok.tok),
		Decoder: decoderSummary(dec, enc.DModel), Tokenizer: &tok.info,
	}
	for _, part := range []struct {
		prefix, as string
		specs      []staged.TensorSpec
	}{{encPrefix, "", encSpecs}, {decPrefix, "decoder.", decSpecs}} {
		for _, sp := range part.specs {
			t := w.tensor(part.prefix + sp.Name)
			r.Tensors = append(r.Tensors, TensorRow{Name: part.as + sp.Name, Shape: sp.Shape, SourceDType: string(t.DType),
				Source: part.prefix + sp.Name, IdentifiedBy: "tensor name"})
		}
	}
	return r, nil
}

// inspectONNXRepo reports on a repository in the onnx-community layout: the
// tensors as the encoder and decoder graphs identify them.
func inspectONNXRepo(dir string, l *onnxLayout, enc staged.Config, dec staged.DecoderInfo) (Report, error) {
	s, err := l.open(dir, enc, dec)
	if err != nil {
		return Report{}, err
	}
	defer s.close()
	tok, err := repoTokenizer(os.DirFS(dir), dec.Vocab, nil)
	if err != nil {
		return Report{}, err
	}
	prec := s.encPlan.precision
	if lessPrecise(s.decPlan.precision, prec) {
		prec = s.decPlan.precision
	}
	r := Report{
		Path: dir, Kind: "model", Config: enc, SourcePrecision: prec, Opset: s.enc.Opsets[""],
		Producer: "onnx-community layout: " + l.encoder + ", " + l.decoder, Sizes: staged.SizesOf(enc),
		Capabilities: staged.CapabilitiesOf(tok.tok), Decoder: decoderSummary(dec, enc.DModel), Tokenizer: &tok.info,
	}
	for _, part := range []struct {
		as string
		ws []*weight
	}{{"", s.encPlan.weights}, {"decoder.", s.decPlan.weights}} {
		for _, w := range part.ws {
			r.Tensors = append(r.Tensors, TensorRow{Name: part.as + w.name, Shape: w.shape(), SourceDType: w.tensor.DataType.String(),
				Source: w.tensor.Name, Node: w.node, IdentifiedBy: w.via, Transposed: w.transposed})
		}
	}
	return r, nil
}
