package convert

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// whisperHeads is the attention head count of every Whisper size, keyed by
// d_model (tiny 384, base 512, small 768, medium 1024, large 1280).
var whisperHeads = map[int]int{384: 6, 512: 8, 768: 12, 1024: 16, 1280: 20}

// shape is the canonical ([out, in] for linear weights) shape of w.
func (w *weight) shape() []int {
	s := w.tensor.Shape()
	switch {
	case w.enc == nbitsQ:
		return []int{w.n, w.k}
	case w.transposed && len(s) == 2:
		return []int{s[1], s[0]}
	}
	return s
}

func (w *weight) describe() string {
	return fmt.Sprintf("initializer %q via node %q", w.tensor.Name, w.node)
}

// notEncoder explains why a graph without conv1 is not a Whisper encoder.
func notEncoder(m *onnx.Model) error {
	names := func(vs []onnx.ValueInfo) string {
		var s []string
		for _, v := range vs {
			s = append(s, v.Name)
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	hint := ""
	for _, t := range m.Graph.Initializers {
		if strings.Contains(t.Name, "embed_tokens") || strings.Contains(t.Name, "encoder_attn") {
			hint = " (it has " + t.Name + ": a decoder?)"
			break
		}
	}
	return fmt.Errorf("not a Whisper encoder%s: want Conv nodes conv1 and conv2 over input_features followed by transformer blocks, found no Conv with a weight; graph inputs %s, outputs %s",
		hint, names(m.Graph.Inputs), names(m.Graph.Outputs))
}

// inferConfig derives the encoder configuration from the identified tensors'
// shapes and the graph: d_model, mel bins and positions from conv1 and the
// positional table, layers from the block indices, FFN size from fc1, heads
// from the attention Reshape constants (or the Whisper table, or override).
func inferConfig(g *graph, ws map[string]*weight, heads int) (staged.Config, error) {
	conv1, ok := ws["conv1.weight"]
	if !ok {
		return staged.Config{}, notEncoder(g.m)
	}
	s := conv1.shape()
	if len(s) != 3 || s[2] != 3 {
		return staged.Config{}, fmt.Errorf("tensor conv1.weight (%s): shape %v, want [d_model, n_mels, 3]", conv1.describe(), s)
	}
	c := staged.Config{
		ModelType: "whisper", DModel: s[0], NumMelBins: s[1],
		ActivationFunction: "gelu", TorchDtype: "bfloat16", LayerNormEps: 1e-5,
	}
	pos, ok := ws["embed_positions.weight"]
	if !ok {
		return c, fmt.Errorf("not a Whisper encoder: no positional table (a [positions, d_model] initializer added after conv2)")
	}
	if ps := pos.shape(); len(ps) == 2 {
		c.MaxSourcePositions = ps[0]
	}
	layers := map[int]bool{}
	for name := range ws {
		var i int
		if _, err := fmt.Sscanf(name, "layers.%d.", &i); err == nil {
			layers[i] = true
		}
	}
	c.EncoderLayers = len(layers)
	for i := range c.EncoderLayers {
		if !layers[i] {
			idx := make([]int, 0, len(layers))
			for k := range layers {
				idx = append(idx, k)
			}
			sort.Ints(idx)
			return c, fmt.Errorf("blocks %v found, want 0..%d without gaps", idx, c.EncoderLayers-1)
		}
	}
	if c.EncoderLayers == 0 {
		return c, fmt.Errorf("not a Whisper encoder: conv1 and the positional table found, but no transformer blocks (layers.N.*)")
	}
	fc1, ok := ws["layers.0.fc1.weight"]
	if !ok {
		return c, fmt.Errorf("tensor layers.0.fc1.weight not found (no MatMul identified as /layers.0/fc1)")
	}
	if fs := fc1.shape(); len(fs) == 2 {
		c.EncoderFFNDim = fs[0]
	}
	c.EncoderAttentionHeads = heads
	if heads == 0 {
		c.EncoderAttentionHeads = headsFromGraph(g, c.DModel)
	}
	if c.EncoderAttentionHeads == 0 {
		c.EncoderAttentionHeads = whisperHeads[c.DModel]
	}
	if c.EncoderAttentionHeads == 0 {
		return c, fmt.Errorf("cannot infer the attention heads: no attention Reshape constant [.., .., heads, head_dim] with heads·head_dim = d_model %d, and %d is not a Whisper size; pass --heads", c.DModel, c.DModel)
	}
	if eps, ok := epsFromGraph(g); ok {
		c.LayerNormEps = eps
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, checkShapes(c, ws)
}

// checkShapes compares every identified tensor with the shape the config
// implies, and reports missing and unexpected tensors.
func checkShapes(c staged.Config, ws map[string]*weight) error {
	specs := c.Tensors()
	want := make(map[string]bool, len(specs))
	for _, sp := range specs {
		want[sp.Name] = true
		w, ok := ws[sp.Name]
		if !ok {
			return fmt.Errorf("tensor %s %v: not found in the graph (config d_model %d, %d layers, ffn %d)", sp.Name, sp.Shape, c.DModel, c.EncoderLayers, c.EncoderFFNDim)
		}
		if got := w.shape(); !slices.Equal(got, sp.Shape) {
			return fmt.Errorf("tensor %s (%s): shape %v, want %v (config d_model %d, ffn %d, %d mels, %d positions)",
				sp.Name, w.describe(), got, sp.Shape, c.DModel, c.EncoderFFNDim, c.NumMelBins, c.MaxSourcePositions)
		}
	}
	for name, w := range ws {
		if !want[name] {
			return fmt.Errorf("tensor %s (%s): not part of a Whisper encoder (k_proj has no bias)", name, w.describe())
		}
	}
	return nil
}

// headsFromGraph looks for the attention Reshape to [batch, seq, heads,
// head_dim]: a 4-element shape, constant or concatenated from constants,
// whose last two entries multiply to d. It returns 0 if none is found.
func headsFromGraph(g *graph, d int) int {
	votes := map[int]int{}
	for i := range g.nodes {
		n := &g.nodes[i]
		if n.OpType != "Reshape" || len(n.Inputs) < 2 {
			continue
		}
		s := g.shapeValues(n.Inputs[1])
		if len(s) != 4 || s[2] <= 1 || s[3] <= 1 || s[2]*s[3] != int64(d) {
			continue
		}
		votes[int(s[2])]++
	}
	best, n := 0, 0
	for h, v := range votes {
		if v > n || (v == n && h < best) {
			best, n = h, v
		}
	}
	return best
}

// shapeValues evaluates a shape operand made of constants: a constant tensor,
// or a Concat of constants and unknowns (reported as -1).
func (g *graph) shapeValues(v string) []int64 {
	if t, ok := g.constant(v); ok {
		vals, err := g.m.Int64s(t)
		if err != nil {
			return nil
		}
		return vals
	}
	p, ok := g.producer[v]
	if !ok || g.nodes[p].OpType != "Concat" {
		return nil
	}
	var out []int64
	for _, in := range g.nodes[p].Inputs {
		t, ok := g.constant(in)
		if !ok {
			out = append(out, -1)
			continue
		}
		vals, err := g.m.Int64s(t)
		if err != nil || len(vals) != 1 {
			return nil
		}
		out = append(out, vals[0])
	}
	return out
}

// epsFromGraph reads the LayerNorm epsilon: the attribute of
// LayerNormalization, or the constant added to the variance before Sqrt.
func epsFromGraph(g *graph) (float64, bool) {
	for i := range g.nodes {
		n := &g.nodes[i]
		switch n.OpType {
		case "LayerNormalization":
			if a, ok := n.Attr("epsilon"); ok {
				return shortest(a.F), true
			}
			return 1e-5, true // the operator's default
		case "Sqrt":
			if len(n.Inputs) == 0 {
				continue
			}
			p, ok := g.producer[n.Inputs[0]]
			if !ok || g.nodes[p].OpType != "Add" {
				continue
			}
			for _, in := range g.nodes[p].Inputs {
				if t, ok := g.constant(in); ok && t.NumElements() == 1 {
					v := make([]float32, 1)
					if g.m.Float32s(t, v) == nil {
						return shortest(v[0]), true
					}
				}
			}
		}
	}
	return 0, false
}

// shortest widens f to the float64 with the same shortest decimal form
// (float32 1e-5 → 1e-05, not 9.99999974737875e-06).
func shortest(f float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return v
}
