package convert

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
)

// encoding says how a source tensor stores a weight.
type encoding int

const (
	plain   encoding = iota // FLOAT, FLOAT16, ... values
	linearQ                 // integer q with scale and zero point: w = (q − zp)·scale
	nbitsQ                  // com.microsoft::MatMulNBits blocks
)

// weight is one canonical encoder tensor and where the source keeps it.
type weight struct {
	name       string       // canonical HF name
	enc        encoding     //
	tensor     *onnx.Tensor // the values, the integer q, or the packed blocks
	scale      *onnx.Tensor // linearQ, nbitsQ
	zeroPoint  *onnx.Tensor // linearQ, nbitsQ (optional)
	transposed bool         // stored [in, out]
	node       string       // the node it was identified through
	via        string       // how: "node name", "bias", "initializer name", "graph order", "shared input"
	k, n       int          // nbitsQ: MatMulNBits K and N
	bits       int          // nbitsQ
	block      int          // nbitsQ
}

var (
	linearModule = regexp.MustCompile(`^layers\.(\d+)\.(self_attn\.(q|k|v|out)_proj|fc1|fc2)$`)
	normModule   = regexp.MustCompile(`^(layers\.(\d+)\.(self_attn_layer_norm|final_layer_norm)|layer_norm)$`)
	convModule   = regexp.MustCompile(`^conv[12]$`)
	prefix       = regexp.MustCompile(`^(model\.)?(encoder\.)?`)
)

// canonical strips the prefixes of full-model exports ("model.encoder.").
func canonical(name string) string { return prefix.ReplaceAllString(name, "") }

// moduleFromInit is the module an initializer's own name claims ("layers.0.fc1"
// for "layers.0.fc1.bias"), or "".
func moduleFromInit(t *onnx.Tensor, suffix string) string {
	n := canonical(t.Name)
	if !strings.HasSuffix(n, suffix) {
		return ""
	}
	return strings.TrimSuffix(n, suffix)
}

// mapper identifies the encoder's tensors in a graph.
type mapper struct {
	g       *graph
	weights map[string]*weight
	pending []*weight // linear weights whose module is not yet known
	pendIn  map[*weight]string
	inputOf map[string]string // canonical linear module → its activation input
	convs   int
	norms   []normInstance
}

type normInstance struct {
	module       string // from the node or initializer names, "" if unknown
	weight, bias *weight
}

func identify(g *graph) (map[string]*weight, error) {
	mp := &mapper{g: g, weights: map[string]*weight{}, pendIn: map[*weight]string{}, inputOf: map[string]string{}}
	for i := range g.nodes {
		if err := mp.visit(i); err != nil {
			return nil, err
		}
	}
	if mp.convs == 0 {
		return nil, notEncoder(g.m)
	}
	if err := mp.resolveNorms(); err != nil {
		return nil, err
	}
	if err := mp.resolvePending(); err != nil {
		return nil, err
	}
	return mp.weights, nil
}

func (mp *mapper) add(w *weight) error {
	if prev, dup := mp.weights[w.name]; dup {
		return fmt.Errorf("tensor %s identified twice: initializer %q via node %q and initializer %q via node %q",
			w.name, prev.tensor.Name, prev.node, w.tensor.Name, w.node)
	}
	if w.enc == plain && w.via != "initializer name" {
		if claimed := canonical(w.tensor.Name); strings.Count(claimed, ".") > 0 && isCanonicalName(claimed) && claimed != w.name {
			return fmt.Errorf("initializer %q is used as %s by node %q: its name and the graph disagree", w.tensor.Name, w.name, w.node)
		}
	}
	mp.weights[w.name] = w
	return nil
}

func isCanonicalName(n string) bool {
	i := strings.LastIndexByte(n, '.')
	if i < 0 {
		return false
	}
	mod, leaf := n[:i], n[i+1:]
	if leaf != "weight" && leaf != "bias" {
		return false
	}
	return linearModule.MatchString(mod) || normModule.MatchString(mod) || convModule.MatchString(mod) || mod == "embed_positions"
}

func (mp *mapper) visit(i int) error {
	n := &mp.g.nodes[i]
	switch n.OpType {
	case "Conv", "ConvInteger":
		return mp.conv(n)
	case "MatMul", "MatMulInteger", "MatMulNBits", "Gemm":
		return mp.linear(n)
	case "LayerNormalization":
		return mp.layerNorm(n)
	case "Mul":
		return mp.decomposedNorm(n)
	case "Add":
		return mp.positions(n)
	}
	return nil
}

// nodeModule is the canonical module named by the node's scope, or "".
func nodeModule(n *onnx.Node) string {
	m, ok := moduleOf(n.Name)
	if !ok {
		return ""
	}
	return canonical(m)
}

func (mp *mapper) conv(n *onnx.Node) error {
	if len(n.Inputs) < 2 {
		return nil
	}
	w, ok := mp.g.source(n.Inputs[1])
	if !ok {
		return nil
	}
	mp.convs++
	module, via := nodeModule(n), "node name"
	if !convModule.MatchString(module) {
		module, via = moduleFromInit(w, ".weight"), "initializer name"
		if n.OpType == "ConvInteger" {
			module = strings.TrimSuffix(canonical(w.Name), "_quantized")
			module = strings.TrimSuffix(module, ".weight")
		}
	}
	if !convModule.MatchString(module) {
		module, via = "conv"+strconv.Itoa(mp.convs), "graph order"
	}
	if mp.convs > 2 {
		return fmt.Errorf("node %q: a third Conv with a weight (%q); a Whisper encoder has conv1 and conv2 only", n.Name, w.Name)
	}
	wt := &weight{name: module + ".weight", tensor: w, node: n.Name, via: via}
	if n.OpType == "ConvInteger" {
		if err := mp.quantParams(wt, n); err != nil {
			return err
		}
	}
	if err := mp.add(wt); err != nil {
		return err
	}
	var bias *onnx.Tensor
	if n.OpType == "Conv" && len(n.Inputs) > 2 {
		bias, _ = mp.g.source(n.Inputs[2])
	} else {
		bias = mp.biasAfter(n)
	}
	if bias == nil {
		return fmt.Errorf("node %q: %s has no bias; Whisper's conv layers have one", n.Name, module)
	}
	return mp.add(&weight{name: module + ".bias", tensor: bias, node: n.Name, via: via})
}

// biasAfter finds the 1-D initializer added to n's output, looking through
// the Cast and the scale Mul that follow integer ops.
func (mp *mapper) biasAfter(n *onnx.Node) *onnx.Tensor {
	if len(n.Outputs) == 0 {
		return nil
	}
	integer := n.OpType == "MatMulInteger" || n.OpType == "ConvInteger"
	var bias *onnx.Tensor
	mp.g.walk(n.Outputs[0], 3, func(node, slot int) (bool, bool) {
		c := &mp.g.nodes[node]
		switch c.OpType {
		case "Add":
			if len(c.Inputs) == 2 {
				t, ok := mp.g.source(c.Inputs[1-slot])
				if ok && len(t.Dims) == 1 {
					bias = t
					return true, false
				}
			}
		case "Mul":
			return false, integer && len(c.Outputs) == 1
		}
		return false, false
	})
	return bias
}

func (mp *mapper) linear(n *onnx.Node) error {
	if len(n.Inputs) < 2 {
		return nil
	}
	w, ok := mp.g.source(n.Inputs[1])
	if !ok {
		return nil // an activation × activation product (attention scores)
	}
	wt := &weight{tensor: w, node: n.Name, transposed: true}
	switch n.OpType {
	case "MatMulInteger":
		if err := mp.quantParams(wt, n); err != nil {
			return err
		}
	case "MatMulNBits":
		if err := mp.nbitsParams(wt, n); err != nil {
			return err
		}
	case "Gemm":
		if a, ok := n.Attr("transB"); ok && a.I == 1 {
			wt.transposed = false
		}
	}
	var bias *onnx.Tensor
	if n.OpType == "Gemm" && len(n.Inputs) > 2 {
		bias, _ = mp.g.source(n.Inputs[2])
	} else {
		bias = mp.biasAfter(n)
	}
	module, via := nodeModule(n), "node name"
	if !linearModule.MatchString(module) && bias != nil {
		module, via = moduleFromInit(bias, ".bias"), "bias"
	}
	wt.via = via
	if !linearModule.MatchString(module) {
		mp.pending = append(mp.pending, wt)
		mp.pendIn[wt] = n.Inputs[0]
		return nil
	}
	wt.name = module + ".weight"
	mp.inputOf[module] = n.Inputs[0]
	if err := mp.add(wt); err != nil {
		return err
	}
	if bias != nil {
		return mp.add(&weight{name: module + ".bias", tensor: bias, node: n.Name, via: via})
	}
	return nil
}

// quantParams finds scale and zero point of an integer weight: ORT names them
// <W>_scale and <W>_zero_point for <W>_quantized; the zero point is also the
// node's input 3.
func (mp *mapper) quantParams(wt *weight, n *onnx.Node) error {
	wt.enc = linearQ
	base := strings.TrimSuffix(wt.tensor.Name, "_quantized")
	if len(n.Inputs) > 3 && n.Inputs[3] != "" {
		wt.zeroPoint, _ = mp.g.constant(n.Inputs[3])
	}
	if wt.zeroPoint == nil {
		wt.zeroPoint = mp.g.inits[base+"_zero_point"]
	}
	wt.scale = mp.g.inits[base+"_scale"]
	if wt.scale == nil {
		wt.scale = mp.scaleAfter(n)
	}
	if wt.scale == nil {
		return fmt.Errorf("node %q (%s): no scale for quantized weight %q (want initializer %q or a scale Mul after the node)", n.Name, n.OpType, wt.tensor.Name, base+"_scale")
	}
	return nil
}

// scaleAfter traces n → Cast → Mul(·, Mul(x_scale, w_scale)) for the weight
// scale initializer.
func (mp *mapper) scaleAfter(n *onnx.Node) *onnx.Tensor {
	if len(n.Outputs) == 0 {
		return nil
	}
	for _, u := range mp.g.users(n.Outputs[0]) {
		c := &mp.g.nodes[u.node]
		if c.OpType != "Mul" || len(c.Inputs) != 2 {
			continue
		}
		p, ok := mp.g.producer[c.Inputs[1-u.slot]]
		if !ok || mp.g.nodes[p].OpType != "Mul" {
			continue
		}
		for _, in := range mp.g.nodes[p].Inputs {
			if t, ok := mp.g.inits[in]; ok {
				return t
			}
		}
	}
	return nil
}

func (mp *mapper) nbitsParams(wt *weight, n *onnx.Node) error {
	wt.enc = nbitsQ
	wt.transposed = false // B is [N][blocks][blob]: output-major
	attr := func(name string, def int64) int64 {
		if a, ok := n.Attr(name); ok {
			return a.I
		}
		return def
	}
	wt.k, wt.n = int(attr("K", -1)), int(attr("N", -1))
	wt.bits, wt.block = int(attr("bits", 4)), int(attr("block_size", -1))
	if wt.k <= 0 || wt.n <= 0 || wt.block <= 0 {
		return fmt.Errorf("node %q (MatMulNBits): attributes K %d, N %d, block_size %d, want all > 0", n.Name, wt.k, wt.n, wt.block)
	}
	if wt.bits != 4 {
		return fmt.Errorf("node %q (MatMulNBits): bits %d, only 4 is supported", n.Name, wt.bits)
	}
	if wt.block < 16 || wt.block&(wt.block-1) != 0 {
		return fmt.Errorf("node %q (MatMulNBits): block_size %d, want a power of two ≥ 16", n.Name, wt.block)
	}
	if len(n.Inputs) < 3 {
		return fmt.Errorf("node %q (MatMulNBits): %d inputs, want A, B, scales[, zero_points]", n.Name, len(n.Inputs))
	}
	var ok bool
	if wt.scale, ok = mp.g.source(n.Inputs[2]); !ok {
		return fmt.Errorf("node %q (MatMulNBits): scales %q is not an initializer", n.Name, n.Inputs[2])
	}
	if len(n.Inputs) > 3 && n.Inputs[3] != "" {
		if wt.zeroPoint, ok = mp.g.source(n.Inputs[3]); !ok {
			return fmt.Errorf("node %q (MatMulNBits): zero_points %q is not an initializer", n.Name, n.Inputs[3])
		}
	}
	return nil
}

func (mp *mapper) layerNorm(n *onnx.Node) error {
	if len(n.Inputs) < 3 {
		return fmt.Errorf("node %q (LayerNormalization): %d inputs, want X, scale, bias", n.Name, len(n.Inputs))
	}
	w, ok1 := mp.g.source(n.Inputs[1])
	b, ok2 := mp.g.source(n.Inputs[2])
	if !ok1 || !ok2 {
		return fmt.Errorf("node %q (LayerNormalization): scale or bias is not an initializer", n.Name)
	}
	mp.addNorm(n, w, b)
	return nil
}

// decomposedNorm recognizes the end of a LayerNorm below opset 17:
// Div(x − mean, sqrt(var + eps)) → Mul(·, weight) → Add(·, bias).
func (mp *mapper) decomposedNorm(n *onnx.Node) error {
	if len(n.Inputs) != 2 || len(n.Outputs) != 1 {
		return nil
	}
	for s := range 2 {
		w, ok := mp.g.source(n.Inputs[s])
		if !ok || len(w.Dims) != 1 {
			continue
		}
		p, ok := mp.g.producer[n.Inputs[1-s]]
		if !ok || mp.g.nodes[p].OpType != "Div" {
			continue
		}
		for _, u := range mp.g.users(n.Outputs[0]) {
			c := &mp.g.nodes[u.node]
			if c.OpType != "Add" || len(c.Inputs) != 2 {
				continue
			}
			if b, ok := mp.g.source(c.Inputs[1-u.slot]); ok && len(b.Dims) == 1 {
				mp.addNorm(n, w, b)
				return nil
			}
		}
	}
	return nil
}

func (mp *mapper) addNorm(n *onnx.Node, w, b *onnx.Tensor) {
	module, via := nodeModule(n), "node name"
	if !normModule.MatchString(module) {
		module, via = moduleFromInit(w, ".weight"), "initializer name"
	}
	if !normModule.MatchString(module) {
		module, via = "", "graph order"
	}
	mp.norms = append(mp.norms, normInstance{
		module: module,
		weight: &weight{tensor: w, node: n.Name, via: via},
		bias:   &weight{tensor: b, node: n.Name, via: via},
	})
}

// resolveNorms names the LayerNorms; those without a name get theirs from
// their place in the graph: self_attn_layer_norm, final_layer_norm per block,
// then layer_norm.
func (mp *mapper) resolveNorms() error {
	count := len(mp.norms)
	for i, nm := range mp.norms {
		module := nm.module
		if module == "" {
			if count%2 != 1 {
				return fmt.Errorf("node %q: LayerNorm %d of %d has no module name, and %d LayerNorms do not make the 2·layers+1 of a Whisper encoder", nm.weight.node, i, count, count)
			}
			switch {
			case i == count-1:
				module = "layer_norm"
			case i%2 == 0:
				module = fmt.Sprintf("layers.%d.self_attn_layer_norm", i/2)
			default:
				module = fmt.Sprintf("layers.%d.final_layer_norm", i/2)
			}
		}
		nm.weight.name, nm.bias.name = module+".weight", module+".bias"
		if err := mp.add(nm.weight); err != nil {
			return err
		}
		if err := mp.add(nm.bias); err != nil {
			return err
		}
	}
	return nil
}

// positions recognizes the Add of the positional table: a 2-D initializer
// added to the transposed conv output.
func (mp *mapper) positions(n *onnx.Node) error {
	if len(n.Inputs) != 2 {
		return nil
	}
	for s := range 2 {
		t, ok := mp.g.source(n.Inputs[s])
		if !ok || len(t.Dims) != 2 {
			continue
		}
		module := nodeModule(n)
		if module != "" && module != "embed_positions" {
			// a scoped Add inside some other module (e.g. a bias broadcast)
			if claimed := moduleFromInit(t, ".weight"); claimed != "embed_positions" {
				continue
			}
		}
		return mp.add(&weight{name: "embed_positions.weight", tensor: t, node: n.Name, via: "positional Add"})
	}
	return nil
}

// resolvePending names linear weights that had neither a scoped node name nor
// a bias: k_proj, which shares its input with q_proj and v_proj.
func (mp *mapper) resolvePending() error {
	byInput := map[string][]string{}
	for module, in := range mp.inputOf {
		byInput[in] = append(byInput[in], module)
	}
	for _, wt := range mp.pending {
		in := mp.pendIn[wt]
		mods := byInput[in]
		sort.Strings(mods)
		var layer string
		for _, m := range mods {
			if sm := linearModule.FindStringSubmatch(m); sm != nil && (sm[3] == "q" || sm[3] == "v") {
				if layer != "" && layer != sm[1] {
					layer = "?"
					break
				}
				layer = sm[1]
			}
		}
		if layer == "" || layer == "?" {
			return fmt.Errorf("node %q (%s) uses weight %q %v, but neither its node name, a bias, nor a shared input with q_proj/v_proj identifies its module",
				wt.node, "MatMul", wt.tensor.Name, wt.tensor.Dims)
		}
		wt.name = "layers." + layer + ".self_attn.k_proj.weight"
		wt.via = "shared input"
		if err := mp.add(wt); err != nil {
			return err
		}
	}
	return nil
}
