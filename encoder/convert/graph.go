package convert

import (
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
)

// graph indexes an ONNX graph for tracing: who produces and who consumes each
// value, and which values are initializers or Constant outputs.
type graph struct {
	m         *onnx.Model
	nodes     []onnx.Node
	inits     map[string]*onnx.Tensor
	producer  map[string]int
	consumers map[string][]use
	constants map[string]*onnx.Tensor // Constant node outputs
}

// use is one input slot of one node.
type use struct {
	node int
	slot int
}

func newGraph(m *onnx.Model) *graph { return newSubgraph(m, &m.Graph, nil) }

// newSubgraph indexes graph sub of m (the main graph or a branch of an If),
// whose nodes also see the initializers outer of the graphs around it.
func newSubgraph(m *onnx.Model, sub *onnx.Graph, outer map[string]*onnx.Tensor) *graph {
	g := &graph{
		m:         m,
		nodes:     sub.Nodes,
		inits:     make(map[string]*onnx.Tensor, len(outer)+len(sub.Initializers)),
		producer:  map[string]int{},
		consumers: map[string][]use{},
		constants: map[string]*onnx.Tensor{},
	}
	for name, t := range outer {
		g.inits[name] = t
	}
	for _, t := range sub.Initializers {
		g.inits[t.Name] = t
	}
	for i, n := range g.nodes {
		for s, in := range n.Inputs {
			if in != "" {
				g.consumers[in] = append(g.consumers[in], use{i, s})
			}
		}
		for _, out := range n.Outputs {
			g.producer[out] = i
		}
		if n.OpType == "Constant" && len(n.Outputs) == 1 {
			if a, ok := n.Attr("value"); ok && a.T != nil {
				g.constants[n.Outputs[0]] = a.T
			}
		}
	}
	return g
}

// passThrough reports whether value-preserving node n forwards its input 0
// unchanged for weight tracing (Cast of fp16 weights, Identity, the Reshape
// ORT puts on a conv bias).
func passThrough(n *onnx.Node) bool {
	switch n.OpType {
	case "Cast", "Identity", "Reshape", "Unsqueeze", "Slice":
		return true
	}
	return false
}

// source follows value v back through pass-through nodes to an initializer.
func (g *graph) source(v string) (*onnx.Tensor, bool) {
	return g.follow(v, g.inits)
}

// constant returns the tensor behind v if it is an initializer or a Constant
// output (through pass-through nodes).
func (g *graph) constant(v string) (*onnx.Tensor, bool) {
	if t, ok := g.source(v); ok {
		return t, true
	}
	return g.follow(v, g.constants)
}

// follow walks value v back through pass-through nodes until it names a tensor of tensors.
// The walk is bounded by the node count, so a cyclic (malformed) graph ends it too.
func (g *graph) follow(v string, tensors map[string]*onnx.Tensor) (*onnx.Tensor, bool) {
	for range len(g.nodes) + 1 {
		if t, ok := tensors[v]; ok {
			return t, true
		}
		p, ok := g.producer[v]
		if !ok || !passThrough(&g.nodes[p]) || len(g.nodes[p].Inputs) == 0 {
			return nil, false
		}
		v = g.nodes[p].Inputs[0]
	}
	return nil, false
}

// walk visits, breadth first and at most depth hops from value v, every node
// consuming a value reached so far (as users sees it). visit tells whether the
// node is the one sought (the walk ends there) and whether to go on through its
// outputs. walk returns the node found and the input slot it was reached at.
func (g *graph) walk(v string, depth int, visit func(node, slot int) (found, onward bool)) (int, int, bool) {
	frontier, seen := []string{v}, map[string]bool{v: true}
	for range depth {
		var next []string
		for _, x := range frontier {
			for _, u := range g.users(x) {
				found, onward := visit(u.node, u.slot)
				if found {
					return u.node, u.slot, true
				}
				if !onward {
					continue
				}
				for _, o := range g.nodes[u.node].Outputs {
					if !seen[o] {
						seen[o] = true
						next = append(next, o)
					}
				}
			}
		}
		frontier = next
	}
	return 0, 0, false
}

// users returns the nodes consuming value v, looking through Cast and
// Identity (the Cast after an integer MatMul, ...).
func (g *graph) users(v string) []use {
	var out []use
	seen := map[string]bool{}
	var walk func(string)
	walk = func(v string) {
		if seen[v] {
			return
		}
		seen[v] = true
		for _, u := range g.consumers[v] {
			n := &g.nodes[u.node]
			if (n.OpType == "Cast" || n.OpType == "Identity") && u.slot == 0 && len(n.Outputs) == 1 {
				walk(n.Outputs[0])
				continue
			}
			out = append(out, u)
		}
	}
	walk(v)
	return out
}

// moduleOf extracts the module path from an exporter's node name:
// "/layers.3/self_attn/v_proj/MatMul" → "layers.3.self_attn.v_proj",
// "/conv1/Conv" → "conv1", "/Add_2" → "" (top level). ok is false for names
// without that scoped form (missing names, "MatMul_12").
func moduleOf(nodeName string) (module string, ok bool) {
	if !strings.HasPrefix(nodeName, "/") {
		return "", false
	}
	i := strings.LastIndexByte(nodeName, '/')
	if i == 0 {
		return "", true
	}
	return strings.ReplaceAll(nodeName[1:i], "/", "."), true
}
