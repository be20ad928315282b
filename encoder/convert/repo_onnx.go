package convert

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// The ONNX layout of a model repository (onnx-community/whisper-*): no
// model.safetensors, and onnx/ holding encoder_model[_VARIANT].onnx with
// decoder_model_merged[_VARIANT].onnx, decoder_model[_VARIANT].onnx or
// decoder_with_past_model[_VARIANT].onnx (VARIANT: fp16, quantized, int8,
// uint8, q4, q4f16, bnb4). The encoder is staged as an encoder .onnx is;
// the decoder's tensors are found by the structure of its graph
// (decoder_graph.go). When a repository has both model.safetensors and
// onnx/, the safetensors are staged.

// onnxDir is the folder of an onnx-community export.
const onnxDir = "onnx"

// Precision variants of onnx-community file names: staged ones first, most
// precise first; quantized decoders are refused.
var (
	onnxVariants      = []string{"", "_fp16"}
	onnxQuantVariants = []string{"_quantized", "_int8", "_uint8", "_q4", "_q4f16", "_bnb4"}
)

// decoderBases are the decoder exports in order of preference: the merged
// and the no-past export hold every decoder tensor; the with-past export
// lacks the cross-attention K/V projections (it takes their output as input).
var decoderBases = []string{"decoder_model_merged", "decoder_model", "decoder_with_past_model"}

// onnxLayout names the ONNX files a repository is staged from, relative to
// its directory.
type onnxLayout struct {
	encoder, decoder string
}

// onnxCandidates lists the encoder and decoder file names in order of
// preference.
func onnxCandidates() (enc, dec []string) {
	for _, v := range append(append([]string{}, onnxVariants...), onnxQuantVariants...) {
		enc = append(enc, onnxDir+"/encoder_model"+v+".onnx")
	}
	for _, v := range onnxVariants {
		for _, b := range decoderBases[:2] {
			dec = append(dec, onnxDir+"/"+b+v+".onnx")
		}
	}
	for _, v := range onnxVariants {
		dec = append(dec, onnxDir+"/"+decoderBases[2]+v+".onnx")
	}
	return enc, dec
}

// findONNXLayout picks the encoder and decoder files of an onnx/ layout
// among the files have reports present.
func findONNXLayout(have func(string) bool) (*onnxLayout, error) {
	encs, decs := onnxCandidates()
	l := &onnxLayout{}
	for _, e := range encs {
		if have(e) {
			l.encoder = e
			break
		}
	}
	for _, d := range decs {
		if have(d) {
			l.decoder = d
			break
		}
	}
	var quant []string
	for _, b := range decoderBases {
		for _, v := range onnxQuantVariants {
			if have(onnxDir + "/" + b + v + ".onnx") {
				quant = append(quant, onnxDir+"/"+b+v+".onnx")
			}
		}
	}
	switch {
	case l.encoder == "":
		return nil, fmt.Errorf("%s/ has no encoder_model.onnx (or an _fp16, _quantized, _int8, _uint8, _q4, _q4f16 or _bnb4 variant)", onnxDir)
	case l.decoder == "" && len(quant) > 0:
		return nil, fmt.Errorf("%s/ has only quantized decoders (%s): quantized decoders are not staged; add the fp32 or fp16 decoder_model_merged.onnx or decoder_model.onnx, or stage %s alone for an encoder-only service",
			onnxDir, strings.Join(quant, ", "), l.encoder)
	case l.decoder == "":
		return nil, fmt.Errorf("%s/ has no decoder_model_merged.onnx, decoder_model.onnx or decoder_with_past_model.onnx (or an _fp16 variant); stage %s alone for an encoder-only service",
			onnxDir, l.encoder)
	}
	return l, nil
}

// onnxSources are the opened and planned ONNX files of a repository.
type onnxSources struct {
	enc, dec         *onnx.Model
	encPlan, decPlan *staging
}

func (s *onnxSources) close() {
	for _, m := range []*onnx.Model{s.enc, s.dec} {
		if m != nil {
			_ = m.Close() // read-only mappings: unmapping cannot lose data
		}
	}
}

// externalData lists the external-data files of the model at path (main
// graph and subgraphs), relative to the repository (onnx/NAME).
func externalData(path string) ([]string, error) {
	m, err := onnx.Open(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var out []string
	var bad error
	seen := map[string]bool{}
	m.Graph.Walk(func(g *onnx.Graph) {
		for _, t := range g.Initializers {
			loc := t.External.Location
			if t.Storage != onnx.StorageExternal || seen[loc] {
				continue
			}
			seen[loc] = true
			if !filepath.IsLocal(loc) || strings.Contains(loc, "/") {
				bad = fmt.Errorf("%s: tensor %q: external data location %q must be a file name next to the model", path, t.Name, loc)
			}
			out = append(out, onnxDir+"/"+loc)
		}
	})
	return out, bad
}

// downloadONNX downloads into dir the onnx/ files of an onnx-community
// repository: the first encoder and decoder of onnxCandidates it has, and
// their external data.
func downloadONNX(ctx context.Context, opts *Options, dir string, get func(string, bool) (bool, error)) error {
	if err := os.MkdirAll(filepath.Join(dir, onnxDir), 0o755); err != nil {
		return err
	}
	encs, decs := onnxCandidates()
	for i, list := range [][]string{encs, decs} {
		found := false
		for _, f := range list {
			if err := ctx.Err(); err != nil {
				return err
			}
			ok, err := get(f, true)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if !ok {
				continue
			}
			ext, err := externalData(filepath.Join(dir, f))
			if err != nil {
				return fmt.Errorf("%s: %w", f, opaqueParseError(opts, err))
			}
			for _, e := range ext {
				if _, err := get(e, false); err != nil {
					return fmt.Errorf("external data %s of %s: %w", e, f, err)
				}
			}
			found = true
			break
		}
		if !found && i == 0 {
			return noWeights(opts.shown())
		}
	}
	return nil
}

// open opens both files and identifies their tensors; the encoder's
// inferred configuration must match config.json's.
func (l *onnxLayout) open(dir string, enc staged.Config, dec staged.DecoderInfo) (*onnxSources, error) {
	s := &onnxSources{}
	var err error
	if s.enc, err = onnx.Open(filepath.Join(dir, l.encoder)); err != nil {
		return nil, err
	}
	if s.encPlan, err = plan(s.enc, enc.EncoderAttentionHeads); err == nil {
		err = s.encPlan.checkExternal(s.enc)
	}
	if err == nil {
		err = sameEncoder(l.encoder, s.encPlan.config, enc)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("%s: %w", l.encoder, err)
	}
	if s.dec, err = onnx.Open(filepath.Join(dir, l.decoder)); err != nil {
		s.close()
		return nil, err
	}
	shape := decoderShape{d: enc.DModel, layers: dec.Layers, ffn: dec.FFN, vocab: dec.Vocab, maxTarget: dec.MaxTargetPositions}
	if s.decPlan, err = planDecoder(s.dec, shape, l.decoder); err == nil {
		err = s.decPlan.checkExternal(s.dec)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// sameEncoder checks the configuration inferred from the encoder graph
// against config.json's.
func sameEncoder(file string, got, want staged.Config) error {
	for _, f := range []struct {
		name      string
		got, want int
	}{{"d_model", got.DModel, want.DModel}, {"encoder_layers", got.EncoderLayers, want.EncoderLayers},
		{"encoder_attention_heads", got.EncoderAttentionHeads, want.EncoderAttentionHeads},
		{"encoder_ffn_dim", got.EncoderFFNDim, want.EncoderFFNDim}, {"num_mel_bins", got.NumMelBins, want.NumMelBins},
		{"max_source_positions", got.MaxSourcePositions, want.MaxSourcePositions}} {
		if f.got != f.want {
			return fmt.Errorf("the graph implies %s %d, %s says %d", f.name, f.got, repoConfig, f.want)
		}
	}
	return nil
}

// planDecoder identifies the decoder tensors of a decoder export. A merged
// export's If on use_cache_branch is followed into both branches: the one
// without past (every tensor) is staged, the one with past (all but the
// cross-attention K/V projections) must use the same values.
func planDecoder(m *onnx.Model, shape decoderShape, file string) (*staging, error) {
	top := newGraph(m)
	var ifs []*onnx.Node
	for i := range m.Graph.Nodes {
		if n := &m.Graph.Nodes[i]; n.OpType == "If" {
			ifs = append(ifs, n)
		}
	}
	var ws map[string]*weight
	var err error
	switch len(ifs) {
	case 0:
		ws, err = identifyDecoder(top, shape, file, false)
	case 1:
		ws, err = mergedDecoder(m, top, ifs[0], shape, file)
	default:
		err = fmt.Errorf("%s: %d If nodes in the main graph, want one (the merged decoder's use_cache_branch)", file, len(ifs))
	}
	if err != nil {
		return nil, err
	}
	s := &staging{precision: precisionOf(ws)}
	for _, sp := range staged.DecoderTensorSpecs(shape.d, shape.layers, shape.ffn, shape.vocab, shape.maxTarget) {
		s.weights = append(s.weights, ws[sp.Name])
	}
	return s, nil
}

// mergedDecoder maps both branches of a merged decoder's If and checks that
// they agree.
func mergedDecoder(m *onnx.Model, top *graph, n *onnx.Node, shape decoderShape, file string) (map[string]*weight, error) {
	branches := map[string]*onnx.Graph{}
	for _, name := range []string{"then_branch", "else_branch"} {
		a, ok := n.Attr(name)
		if !ok || a.G == nil {
			return nil, fmt.Errorf("%s: If node %q has no %s graph", file, n.Name, name)
		}
		branches[name] = a.G
	}
	where := func(b string) string { return fmt.Sprintf("%s (If %q, %s)", file, n.Name, b) }
	// Optimum's merged decoders run the no-past export when use_cache_branch
	// is false: else_branch; the structure decides, not the convention.
	full, past := "else_branch", "then_branch"
	noPast, errElse := identifyDecoder(newSubgraph(m, branches[full], top.inits), shape, where(full), false)
	if errElse != nil {
		full, past = past, full
		var errThen error
		if noPast, errThen = identifyDecoder(newSubgraph(m, branches[full], top.inits), shape, where(full), false); errThen != nil {
			return nil, fmt.Errorf("neither branch holds a whole decoder: %w; %w", errElse, errThen)
		}
	}
	withPast, err := identifyDecoder(newSubgraph(m, branches[past], top.inits), shape, where(past), true)
	if err != nil {
		return nil, err
	}
	for name, w := range withPast {
		if err := sameWeight(m, noPast[name], w); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %s and %s disagree: %w", file, name, full, past, err)
		}
	}
	return noPast, nil
}

// sameWeight checks that two identifications of one tensor hold the same
// values in the same layout.
func sameWeight(m *onnx.Model, a, b *weight) error {
	if a.tensor == b.tensor && a.transposed == b.transposed {
		return nil
	}
	if a.transposed != b.transposed || a.tensor.NumElements() != b.tensor.NumElements() {
		return fmt.Errorf("%s %v (transposed %v) vs %s %v (transposed %v)", a.describe(), a.tensor.Dims, a.transposed, b.describe(), b.tensor.Dims, b.transposed)
	}
	x := make([]float32, a.tensor.NumElements())
	y := make([]float32, b.tensor.NumElements())
	if err := m.Float32s(a.tensor, x); err != nil {
		return err
	}
	if err := m.Float32s(b.tensor, y); err != nil {
		return err
	}
	for i := range x {
		if x[i] != y[i] && (x[i] == x[i] || y[i] == y[i]) {
			return fmt.Errorf("%s [%d] = %g, %s [%d] = %g", a.describe(), i, x[i], b.describe(), i, y[i])
		}
	}
	return nil
}

// writeONNX converts the planned encoder and decoder into tmp and copies the
// metadata, returning the manifest (without key, sources and sizes).
func (r *repo) writeONNX(ctx context.Context, opts *Options, s *onnxSources, tmp string, enc staged.Config, dec *staged.DecoderInfo) (staged.Manifest, error) {
	tok, err := r.copyMeta(tmp, dec.Vocab, !opts.NoSync)
	if err != nil {
		return staged.Manifest{}, err
	}
	encBytes, decBytes := s.encPlan.sourceBytes(), s.decPlan.sourceBytes()
	encRecs, _, err := writeWeights(ctx, convertOffset(opts, 0, encBytes+decBytes), s.enc, s.encPlan, filepath.Join(tmp, staged.WeightsFile))
	if err != nil {
		return staged.Manifest{}, fmt.Errorf("%s: %w", r.onnx.encoder, err)
	}
	decOpts := convertOffset(opts, encBytes, encBytes+decBytes)
	if dec.Tensors, _, err = writeWeights(ctx, decOpts, s.dec, s.decPlan, filepath.Join(tmp, staged.DecoderFile)); err != nil {
		return staged.Manifest{}, fmt.Errorf("%s: %w", r.onnx.decoder, err)
	}
	prec := staged.Float32
	for _, p := range []*staging{s.encPlan, s.decPlan} {
		if lessPrecise(p.precision, prec) {
			prec = p.precision
		}
	}
	producer := strings.TrimSpace("onnx-community layout: " + s.dec.ProducerName + " " + s.dec.ProducerVersion)
	return staged.Manifest{
		FormatVersion: staged.FormatVersion, Source: opts.shown(),
		SourcePrecision: prec, LossySource: prec.Lossy(), Precision: staged.BFloat16,
		ConverterVersion: opts.ConverterVersion, OpsetVersion: s.enc.Opsets[""], Producer: producer,
		StagedAt: time.Now().UTC().Truncate(time.Second), Tensors: encRecs, Sizes: staged.SizesOf(enc),
		Capabilities: staged.CapabilitiesOf(tok.tok), Decoder: dec, Tokenizer: &tok.info,
	}, nil
}

// lessPrecise reports whether precision a loses more than b.
func lessPrecise(a, b staged.Precision) bool {
	rank := map[staged.Precision]int{staged.Float32: 0, staged.BFloat16: 1, staged.Float16: 2, staged.Uint8: 3, staged.Int8: 4, staged.Q4: 5}
	return rank[a] > rank[b]
}

// sourceBytes is the source size of the planned tensors.
func (s *staging) sourceBytes() int64 {
	var n int64
	for _, w := range s.weights {
		n += sourceBytes(w)
	}
	return n
}

// convertOffset is opts with "convert" progress shifted by base bytes of a
// total covering several weight files, so one bar runs across all of them.
func convertOffset(opts *Options, base, total int64) *Options {
	o := *opts
	o.Progress = func(p Progress) {
		if p.Phase == "convert" {
			p.Done, p.Total = base+p.Done, total
		}
		opts.Progress(p)
	}
	return &o
}
