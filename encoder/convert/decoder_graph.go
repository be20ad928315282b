package convert

import (
	"fmt"
	"slices"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// Mapping a Whisper decoder export (onnx-community's decoder_model.onnx,
// decoder_with_past_model.onnx or decoder_model_merged.onnx) by its
// structure: initializer and node names are recorded, never trusted. The
// walk starts at the token embedding (the Gather of input_ids), follows the
// residual stream through each layer's three blocks — LayerNorm, then
// self-attention, cross-attention or the MLP, then the residual Add — and
// ends at the final LayerNorm and the logits MatMul, whose weight must be
// the token embedding (Whisper ties them). Inside an attention block q_proj
// is the projection of the LayerNorm's output that reaches the score
// MatMul's left input; k_proj and v_proj are the projections behind the
// score MatMul's right input and the value MatMul's right input (the
// LayerNorm's output for self-attention, encoder_hidden_states for
// cross-attention); out_proj is the first projection after the values.

// decoderShape is the decoder's shape from config.json.
type decoderShape struct {
	d, layers, ffn, vocab, maxTarget int
}

// decMapper identifies the decoder tensors in one graph (a whole decoder
// export or one branch of a merged one).
type decMapper struct {
	g       *graph
	mp      *mapper // for biasAfter
	shape   decoderShape
	where   string // the file (and branch) for errors
	weights map[string]*weight
}

// maxWalk bounds the forward and backward walks between two landmarks of
// the graph (a projection and its attention MatMul are a few nodes apart).
const maxWalk = 12

// quantizedOps are operators of quantized exports; such decoders are refused.
var quantizedOps = map[string]bool{
	"MatMulInteger": true, "MatMulNBits": true, "DynamicQuantizeLinear": true, "DequantizeLinear": true,
	"QLinearMatMul": true, "DynamicQuantizeMatMul": true, "MatMulIntegerToFloat": true, "QuantizeLinear": true,
	"MatMulBnb4": true, "GatherBlockQuantized": true, "QGemm": true, "QAttention": true,
}

// fusedOps are onnxruntime's fused operators of optimized exports; their
// weights are packed in layouts the structure walk does not follow.
var fusedOps = map[string]bool{
	"Attention": true, "MultiHeadAttention": true, "DecoderMaskedMultiHeadAttention": true, "GroupQueryAttention": true,
	"SkipLayerNormalization": true, "EmbedLayerNormalization": true, "BiasGelu": true, "FastGelu": true, "FusedMatMul": true,
	"SkipSimplifiedLayerNormalization": true, "SimplifiedLayerNormalization": true,
}

// identifyDecoder maps every tensor of the decoder shape in graph g.
// crossOptional lets a graph without cross-attention projections pass (the
// with-past branch of a merged model takes the encoder's K/V as inputs).
func identifyDecoder(g *graph, shape decoderShape, where string, crossOptional bool) (map[string]*weight, error) {
	for _, n := range g.nodes {
		if quantizedOps[n.OpType] {
			return nil, fmt.Errorf("%s: node %q is %s: quantized decoders are not staged (their weights would be dequantized approximations); stage the repository's fp32 or fp16 decoder export",
				where, n.Name, n.OpType)
		}
		if fusedOps[n.OpType] {
			return nil, fmt.Errorf("%s: node %q is the fused %s of an onnxruntime-optimized export: its weights are not mapped; stage the unoptimized export (torch.onnx / optimum without --optimize)",
				where, n.Name, n.OpType)
		}
	}
	dm := &decMapper{g: g, mp: &mapper{g: g}, shape: shape, where: where, weights: map[string]*weight{}}
	r, err := dm.embeddings()
	if err != nil {
		return nil, err
	}
	for i := range shape.layers {
		p := fmt.Sprintf("layers.%d.", i)
		if r, err = dm.attention(r, p+"self_attn", false, false); err != nil {
			return nil, err
		}
		if r, err = dm.attention(r, p+"encoder_attn", true, crossOptional); err != nil {
			return nil, err
		}
		if r, err = dm.mlp(r, p); err != nil {
			return nil, err
		}
	}
	if err := dm.logits(r); err != nil {
		return nil, err
	}
	return dm.weights, dm.checkShapes(crossOptional)
}

func (dm *decMapper) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", dm.where, fmt.Sprintf(format, args...))
}

func (dm *decMapper) add(name string, w *weight) error {
	if prev, dup := dm.weights[name]; dup {
		return dm.errorf("tensor %s identified twice: initializer %q via node %q and %q via node %q", name, prev.tensor.Name, prev.node, w.tensor.Name, w.node)
	}
	w.name = name
	dm.weights[name] = w
	return nil
}

// isInput reports whether v is an input of the graph (or of the graphs around
// a branch): produced by no node and no initializer.
func (dm *decMapper) isInput(v string) bool {
	_, produced := dm.g.producer[v]
	_, init := dm.g.inits[v]
	return !produced && !init
}

// embeddings finds the token embedding (a Gather of a graph input over a
// [vocab, d] initializer) and the positional table added to it; it returns
// the residual stream after their Add.
func (dm *decMapper) embeddings() (string, error) {
	s := dm.shape
	var found []int
	for i := range dm.g.nodes {
		n := &dm.g.nodes[i]
		if n.OpType != "Gather" || len(n.Inputs) != 2 {
			continue
		}
		t, ok := dm.g.source(n.Inputs[0])
		if ok && slices.Equal(t.Shape(), []int{s.vocab, s.d}) && dm.isInput(dm.g.passBack(n.Inputs[1])) {
			found = append(found, i)
		}
	}
	if len(found) != 1 {
		return "", dm.errorf("found %d Gathers of a graph input over a [%d %d] initializer (vocab_size × d_model of config.json), want 1: the token embedding", len(found), s.vocab, s.d)
	}
	gather := &dm.g.nodes[found[0]]
	tok, _ := dm.g.source(gather.Inputs[0])
	if err := dm.add("embed_tokens.weight", &weight{tensor: tok, node: gather.Name, via: "token Gather"}); err != nil {
		return "", err
	}
	for _, u := range dm.g.users(gather.Outputs[0]) {
		n := &dm.g.nodes[u.node]
		if n.OpType != "Add" || len(n.Inputs) != 2 {
			continue
		}
		if pos, ok := dm.positionTable(n.Inputs[1-u.slot]); ok {
			return n.Outputs[0], dm.add("embed_positions.weight", &weight{tensor: pos, node: n.Name, via: "positional Add"})
		}
	}
	return "", dm.errorf("node %q (token embedding Gather of %q): no Add of a [%d %d] positional table (max_target_positions × d_model) after it", gather.Name, tok.Name, s.maxTarget, s.d)
}

// positionTable follows v back through pass-through nodes and Gathers (a
// lookup of position ids) to a [maxTarget, d] initializer.
func (dm *decMapper) positionTable(v string) (*onnx.Tensor, bool) {
	for range maxWalk {
		if t, ok := dm.g.inits[v]; ok {
			return t, slices.Equal(t.Shape(), []int{dm.shape.maxTarget, dm.shape.d})
		}
		p, ok := dm.g.producer[v]
		if !ok || len(dm.g.nodes[p].Inputs) == 0 {
			return nil, false
		}
		n := &dm.g.nodes[p]
		if !passThrough(n) && n.OpType != "Gather" {
			return nil, false
		}
		v = n.Inputs[0]
	}
	return nil, false
}

// passBack follows v back through Cast, Identity, Reshape, Unsqueeze and
// Squeeze (the shaping of input_ids) and returns the value reached.
func (g *graph) passBack(v string) string {
	for range maxWalk {
		p, ok := g.producer[v]
		if !ok {
			return v
		}
		switch n := &g.nodes[p]; n.OpType {
		case "Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze":
			v = n.Inputs[0]
		default:
			return v
		}
	}
	return v
}

// layerNorm finds the LayerNorm applied to the residual stream r: a
// LayerNormalization, or the decomposed form ending in Mul(Div(…), weight)
// → Add(·, bias). It records module's weight and bias and returns the
// normalized value.
func (dm *decMapper) layerNorm(r, module string) (string, error) {
	var out string
	var err error
	_, _, found := dm.g.walk(r, 4, func(node, slot int) (bool, bool) {
		n := &dm.g.nodes[node]
		var ok bool
		if out, ok, err = dm.normAt(n, slot, module); ok || err != nil {
			return true, false
		}
		switch n.OpType {
		case "ReduceMean", "Sub", "Div", "Pow", "Sqrt":
			return false, true
		}
		return false, false
	})
	if found {
		return out, err
	}
	return "", dm.errorf("%s: no LayerNorm on the residual stream %q (want LayerNormalization, or ReduceMean … Div → Mul(weight) → Add(bias))", module, r)
}

// normAt recognizes node n (reached at input slot) as the end of a LayerNorm.
func (dm *decMapper) normAt(n *onnx.Node, slot int, module string) (string, bool, error) {
	d := dm.shape.d
	vec := func(v string) (*onnx.Tensor, bool) {
		t, ok := dm.g.source(v)
		return t, ok && slices.Equal(t.Shape(), []int{d})
	}
	if n.OpType == "LayerNormalization" && slot == 0 && len(n.Inputs) >= 3 {
		w, ok1 := vec(n.Inputs[1])
		b, ok2 := vec(n.Inputs[2])
		if !ok1 || !ok2 {
			return "", false, dm.errorf("%s: node %q (LayerNormalization): scale and bias are not [%d] initializers", module, n.Name, d)
		}
		return n.Outputs[0], true, dm.addNorm(module, w, b, n.Name)
	}
	if n.OpType != "Div" || slot != 0 {
		return "", false, nil
	}
	for _, u := range dm.g.users(n.Outputs[0]) {
		mul := &dm.g.nodes[u.node]
		if mul.OpType != "Mul" || len(mul.Inputs) != 2 {
			continue
		}
		w, ok := vec(mul.Inputs[1-u.slot])
		if !ok {
			continue
		}
		for _, u2 := range dm.g.users(mul.Outputs[0]) {
			add := &dm.g.nodes[u2.node]
			if add.OpType != "Add" || len(add.Inputs) != 2 {
				continue
			}
			if b, ok := vec(add.Inputs[1-u2.slot]); ok {
				return add.Outputs[0], true, dm.addNorm(module, w, b, mul.Name)
			}
		}
	}
	return "", false, nil
}

func (dm *decMapper) addNorm(module string, w, b *onnx.Tensor, node string) error {
	if err := dm.add(module+".weight", &weight{tensor: w, node: node, via: "LayerNorm on the residual stream"}); err != nil {
		return err
	}
	return dm.add(module+".bias", &weight{tensor: b, node: node, via: "LayerNorm on the residual stream"})
}

// projection returns the weight initializer of node n when it is a linear
// layer (MatMul or Gemm with an initializer B), and whether B is [in, out].
func (dm *decMapper) projection(n *onnx.Node) (*onnx.Tensor, bool, bool) {
	if (n.OpType != "MatMul" && n.OpType != "Gemm") || len(n.Inputs) < 2 {
		return nil, false, false
	}
	t, ok := dm.g.source(n.Inputs[1])
	if !ok || len(t.Dims) != 2 {
		return nil, false, false
	}
	transposed := true
	if a, ok := n.Attr("transB"); ok && n.OpType == "Gemm" && a.I == 1 {
		transposed = false
	}
	return t, transposed, true
}

// isActMatMul reports whether n multiplies two activations (attention).
func (dm *decMapper) isActMatMul(n *onnx.Node) bool {
	if n.OpType != "MatMul" || len(n.Inputs) != 2 {
		return false
	}
	_, ok0 := dm.g.constant(n.Inputs[0])
	_, ok1 := dm.g.constant(n.Inputs[1])
	return !ok0 && !ok1
}

// dataSlot reports whether input slot of n carries the data a walk follows
// (not a shape, index or condition).
func dataSlot(n *onnx.Node, slot int) bool {
	switch n.OpType {
	case "Shape", "Size", "ConstantOfShape", "Range":
		return false
	case "Reshape", "Slice", "Expand", "Unsqueeze", "Squeeze", "Tile", "Gather":
		return slot == 0
	case "Where":
		return slot > 0
	}
	return true
}

// forward walks from value v along data edges, not through any MatMul or
// Gemm, and returns the first node (with the slot it is reached at) that
// stop accepts.
func (dm *decMapper) forward(v string, stop func(n *onnx.Node, slot int) bool) (int, int, bool) {
	return dm.g.walk(v, maxWalk, func(node, slot int) (bool, bool) {
		n := &dm.g.nodes[node]
		switch {
		case !dataSlot(n, slot):
			return false, false
		case stop(n, slot):
			return true, false
		}
		return false, n.OpType != "MatMul" && n.OpType != "Gemm"
	})
}

// backward walks from value v against data edges, not through attention
// MatMuls, and returns the projections it reaches and the graph inputs.
func (dm *decMapper) backward(v string) (out []int, inputs []string) {
	seen := map[string]bool{}
	var walk func(v string, depth int)
	walk = func(v string, depth int) {
		if seen[v] || depth > maxWalk {
			return
		}
		seen[v] = true
		p, ok := dm.g.producer[v]
		if !ok {
			if dm.isInput(v) {
				inputs = append(inputs, v)
			}
			return
		}
		n := &dm.g.nodes[p]
		if _, _, ok := dm.projection(n); ok {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
			return
		}
		if n.OpType == "MatMul" || n.OpType == "Gemm" || n.OpType == "Softmax" {
			return
		}
		for s, in := range n.Inputs {
			if _, c := dm.g.constant(in); in != "" && !c && dataSlot(n, s) {
				walk(in, depth+1)
			}
		}
	}
	walk(v, 0)
	return out, inputs
}

// scoresMatMul reports whether attention MatMul n computes scores: a
// Softmax follows it.
func (dm *decMapper) scoresMatMul(n *onnx.Node) bool {
	_, _, ok := dm.forward(n.Outputs[0], func(c *onnx.Node, _ int) bool { return c.OpType == "Softmax" })
	return ok
}

// linear records a projection and its bias (none for k_proj).
func (dm *decMapper) linear(module string, node int, bias bool) error {
	n := &dm.g.nodes[node]
	t, transposed, _ := dm.projection(n)
	if err := dm.add(module+".weight", &weight{tensor: t, node: n.Name, via: "graph structure", transposed: transposed}); err != nil {
		return err
	}
	var b *onnx.Tensor
	if n.OpType == "Gemm" && len(n.Inputs) > 2 {
		b, _ = dm.g.source(n.Inputs[2])
	} else {
		b = dm.mp.biasAfter(n)
	}
	switch {
	case b == nil && bias:
		return dm.errorf("%s: node %q has no bias Add after it; Whisper's %s has a bias", module, n.Name, module)
	case b != nil && !bias:
		return dm.errorf("%s: node %q adds bias %q; Whisper's %s has none", module, n.Name, b.Name, module)
	case b == nil:
		return nil
	}
	return dm.add(module+".bias", &weight{tensor: b, node: n.Name, via: "bias Add"})
}

// attention maps one attention block on residual stream r and returns the
// stream after its residual Add. cross blocks take K/V from outside the
// block; optional lets them be absent (computed by another graph).
func (dm *decMapper) attention(r, module string, cross, optional bool) (string, error) {
	h, err := dm.layerNorm(r, module+"_layer_norm")
	if err != nil {
		return "", err
	}
	q, scores := -1, -1
	for _, u := range dm.g.users(h) {
		if _, _, ok := dm.projection(&dm.g.nodes[u.node]); !ok {
			continue
		}
		a, slot, ok := dm.forward(dm.g.nodes[u.node].Outputs[0], func(n *onnx.Node, _ int) bool { return dm.isActMatMul(n) })
		if ok && slot == 0 && dm.scoresMatMul(&dm.g.nodes[a]) {
			if q >= 0 {
				return "", dm.errorf("%s: nodes %q and %q both project the LayerNorm output into attention scores as queries", module, dm.g.nodes[q].Name, dm.g.nodes[u.node].Name)
			}
			q, scores = u.node, a
		}
	}
	if q < 0 {
		return "", dm.errorf("%s: no projection of the LayerNorm output %q reaches the left side of an attention score MatMul (q_proj)", module, h)
	}
	values, slot, ok := dm.forward(dm.g.nodes[scores].Outputs[0], func(n *onnx.Node, _ int) bool { return dm.isActMatMul(n) })
	if !ok || slot != 0 {
		return "", dm.errorf("%s: score MatMul %q: no MatMul of the attention weights with the values after its Softmax", module, dm.g.nodes[scores].Name)
	}
	if err := dm.linear(module+".q_proj", q, true); err != nil {
		return "", err
	}
	if err := dm.keysValues(module, h, scores, values, cross, optional); err != nil {
		return "", err
	}
	return dm.output(r, module, values)
}

// keysValues maps k_proj and v_proj: the projections behind the right
// inputs of the score and value MatMuls, fed by h (self-attention) or by
// something else (cross-attention: the encoder's hidden states).
func (dm *decMapper) keysValues(module, h string, scores, values int, cross, optional bool) error {
	for _, kv := range []struct {
		name string
		at   int
		bias bool
	}{{"k_proj", scores, false}, {"v_proj", values, true}} {
		at := &dm.g.nodes[kv.at]
		found, inputs := dm.backward(at.Inputs[1])
		if len(found) == 0 && cross && optional {
			continue
		}
		if len(found) == 0 && cross && len(inputs) > 0 {
			return dm.errorf("%s.%s: the cross-attention %s come from graph input %v, not from a projection: this export (a decoder with past) lacks the cross-attention K/V weights; stage decoder_model.onnx or decoder_model_merged.onnx",
				module, kv.name, map[string]string{"k_proj": "keys", "v_proj": "values"}[kv.name], inputs)
		}
		if len(found) != 1 {
			return dm.errorf("%s.%s: the right input of MatMul %q comes from %d projections, want 1", module, kv.name, at.Name, len(found))
		}
		n := &dm.g.nodes[found[0]]
		if fromH := dm.g.passBack(n.Inputs[0]) == h || n.Inputs[0] == h; fromH == cross {
			want := map[bool]string{true: "the encoder's hidden states", false: "the LayerNorm output " + h}[cross]
			return dm.errorf("%s.%s: node %q projects %q, want %s", module, kv.name, n.Name, n.Inputs[0], want)
		}
		if err := dm.linear(module+"."+kv.name, found[0], kv.bias); err != nil {
			return err
		}
	}
	return nil
}

// output maps out_proj after the value MatMul and returns the residual
// stream after the block's Add with r.
func (dm *decMapper) output(r, module string, values int) (string, error) {
	out, _, ok := dm.forward(dm.g.nodes[values].Outputs[0], func(n *onnx.Node, _ int) bool {
		_, _, ok := dm.projection(n)
		return ok
	})
	if !ok {
		return "", dm.errorf("%s: no out_proj after value MatMul %q", module, dm.g.nodes[values].Name)
	}
	if err := dm.linear(module+".out_proj", out, true); err != nil {
		return "", err
	}
	return dm.residual(r, module, out)
}

// residual finds the Add of r and the block output that starts at node from.
func (dm *decMapper) residual(r, module string, from int) (string, error) {
	add, _, ok := dm.forward(dm.g.nodes[from].Outputs[0], func(n *onnx.Node, slot int) bool {
		return n.OpType == "Add" && len(n.Inputs) == 2 && n.Inputs[1-slot] == r
	})
	if !ok {
		return "", dm.errorf("%s: no residual Add of %q after node %q", module, r, dm.g.nodes[from].Name)
	}
	return dm.g.nodes[add].Outputs[0], nil
}

// mlp maps final_layer_norm, fc1 and fc2 of layer prefix p.
func (dm *decMapper) mlp(r, p string) (string, error) {
	h, err := dm.layerNorm(r, p+"final_layer_norm")
	if err != nil {
		return "", err
	}
	fc1 := -1
	for _, u := range dm.g.users(h) {
		if _, _, ok := dm.projection(&dm.g.nodes[u.node]); ok {
			if fc1 >= 0 {
				return "", dm.errorf("%sfc1: nodes %q and %q both project the MLP's LayerNorm output", p, dm.g.nodes[fc1].Name, dm.g.nodes[u.node].Name)
			}
			fc1 = u.node
		}
	}
	if fc1 < 0 {
		return "", dm.errorf("%sfc1: no projection of the LayerNorm output %q", p, h)
	}
	fc2, _, ok := dm.forward(dm.g.nodes[fc1].Outputs[0], func(n *onnx.Node, _ int) bool {
		_, _, ok := dm.projection(n)
		return ok
	})
	if !ok {
		return "", dm.errorf("%sfc2: no projection after fc1 %q", p, dm.g.nodes[fc1].Name)
	}
	if err := dm.linear(p+"fc1", fc1, true); err != nil {
		return "", err
	}
	if err := dm.linear(p+"fc2", fc2, true); err != nil {
		return "", err
	}
	return dm.residual(r, p+"mlp", fc2)
}

// logits maps the final LayerNorm and checks that the logits projection is
// the token embedding: the same initializer (transposed by a Transpose or
// Gemm's transB), or a copy of it stored [d, vocab] (a constant-folded
// transpose, typically named onnx::MatMul_N), equal value for value.
func (dm *decMapper) logits(r string) error {
	h, err := dm.layerNorm(r, "layer_norm")
	if err != nil {
		return err
	}
	emb := dm.weights["embed_tokens.weight"].tensor
	// the first MatMul or Gemm the normalized states reach (a Gemm after a
	// Reshape to two dimensions)
	if i, _, ok := dm.forward(h, func(n *onnx.Node, slot int) bool {
		return (n.OpType == "MatMul" || n.OpType == "Gemm") && slot == 0 && len(n.Inputs) >= 2
	}); ok {
		n := &dm.g.nodes[i]
		b, transposeNode := n.Inputs[1], false
		if p, ok := dm.g.producer[b]; ok && dm.g.nodes[p].OpType == "Transpose" {
			b, transposeNode = dm.g.nodes[p].Inputs[0], true
		}
		t, ok := dm.g.source(b)
		switch {
		case !ok:
			return dm.errorf("logits node %q: its weight %q is not an initializer", n.Name, n.Inputs[1])
		case t == emb:
			return nil
		case transposeNode: // a Transpose of a [vocab, d] table: equal to the embedding as stored
			if err := sameWeight(dm.g.m, &weight{tensor: t, node: n.Name}, &weight{tensor: emb, node: n.Name}); err != nil {
				return dm.errorf("logits node %q: the transposed %q is not the token embedding %q (untied output projections are not supported): %v", n.Name, t.Name, emb.Name, err)
			}
			return nil
		}
		return dm.tiedCopy(n, t, emb)
	}
	return dm.errorf("no logits MatMul after the final LayerNorm %q", h)
}

// tiedCopy checks that t, the logits weight, is the token embedding emb
// stored transposed: element for element, in place when both payloads are
// raw bytes of one type (a large-v3 embedding is 66 M values), else decoded.
func (dm *decMapper) tiedCopy(n *onnx.Node, t, emb *onnx.Tensor) error {
	s := dm.shape
	if !slices.Equal(t.Shape(), []int{s.d, s.vocab}) {
		return dm.errorf("logits node %q: weight %q has shape %v, want [%d %d] (the token embedding transposed: Whisper ties them)", n.Name, t.Name, t.Dims, s.d, s.vocab)
	}
	m := dm.g.m
	a, okA, errA := m.Bytes(t)
	e, okE, errE := m.Bytes(emb)
	if errA == nil && errE == nil && okA && okE && t.DataType == emb.DataType {
		defer m.ReleaseBytes(a)
		defer m.ReleaseBytes(e)
		if i, j, ok := transposedEqual(a, e, s.d, s.vocab, t.DataType.Size()); !ok {
			return dm.untied(n, t, emb, i, j)
		}
		return nil
	}
	x := make([]float32, s.d*s.vocab)
	y := make([]float32, s.d*s.vocab)
	if err := m.Float32s(t, x); err != nil {
		return dm.errorf("logits weight %q: %v", t.Name, err)
	}
	if err := m.Float32s(emb, y); err != nil {
		return dm.errorf("token embedding %q: %v", emb.Name, err)
	}
	for i := range s.d {
		for j := range s.vocab {
			if u, v := x[i*s.vocab+j], y[j*s.d+i]; u != v && (u == u || v == v) {
				return dm.untied(n, t, emb, i, j)
			}
		}
	}
	return nil
}

// tileEdge is the side of the tiles transposedEqual compares: both
// matrices are read a few cache lines at a time, not one strided element.
const tileEdge = 64

// transposedEqual reports whether a [rows, cols] equals b [cols, rows]
// transposed, element bytes for element bytes (size bytes each), and where
// they first differ.
func transposedEqual(a, b []byte, rows, cols, size int) (int, int, bool) {
	for i0 := 0; i0 < rows; i0 += tileEdge {
		for j0 := 0; j0 < cols; j0 += tileEdge {
			for i := i0; i < min(i0+tileEdge, rows); i++ {
				for j := j0; j < min(j0+tileEdge, cols); j++ {
					if string(a[(i*cols+j)*size:][:size]) != string(b[(j*rows+i)*size:][:size]) {
						return i, j, false
					}
				}
			}
		}
	}
	return 0, 0, true
}

func (dm *decMapper) untied(n *onnx.Node, t, emb *onnx.Tensor, i, j int) error {
	return dm.errorf("logits node %q: weight %q [%d %d] differs from the token embedding %q [%d %d]: untied output projections are not supported",
		n.Name, t.Name, i, j, emb.Name, j, i)
}

// checkShapes requires every decoder tensor (but the cross-attention K/V
// projections when optional) with the shape config.json implies.
func (dm *decMapper) checkShapes(crossOptional bool) error {
	s := dm.shape
	for _, sp := range staged.DecoderTensorSpecs(s.d, s.layers, s.ffn, s.vocab, s.maxTarget) {
		w, ok := dm.weights[sp.Name]
		if !ok {
			if crossOptional && isCrossKV(sp.Name) {
				continue
			}
			return dm.errorf("no tensor %s found", sp.Name)
		}
		if got := w.shape(); !slices.Equal(got, sp.Shape) {
			return dm.errorf("tensor %s (%s) has shape %v, config.json implies %v", sp.Name, w.describe(), got, sp.Shape)
		}
	}
	return nil
}

// isCrossKV reports whether name is a cross-attention K or V projection.
func isCrossKV(name string) bool {
	for _, suffix := range []string{".encoder_attn.k_proj.weight", ".encoder_attn.v_proj.weight", ".encoder_attn.v_proj.bias"} {
		if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}
