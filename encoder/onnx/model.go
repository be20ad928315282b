// Package onnx reads the parts of an ONNX model that staging needs — the
// graph's nodes, inputs, outputs and initializers — straight from the
// protobuf wire format (protowire) over a memory-mapped file, without loading
// tensor payloads: an initializer records where its bytes lie (raw_data, a
// typed repeated field, or an external-data file next to the model) and they
// are decoded on demand, then released.
//
// Field numbers follow onnx/onnx.proto (IR version 3 and later).
package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Model is a parsed ONNX model. Tensor payloads are views into the mapped
// file (or external-data files) and stay valid until Close.
type Model struct {
	// Path is the model file's path ("" for Parse).
	Path string
	// IRVersion is the ONNX IR version.
	IRVersion int64
	// ProducerName and ProducerVersion identify the exporter.
	ProducerName, ProducerVersion string
	// Opsets maps an operator-set domain ("" for the default ai.onnx) to its version.
	Opsets map[string]int64
	// Graph is the main graph.
	Graph Graph

	size   int64
	mapped []byte
	// dropLo, dropHi: the part of mapped that drop has yet to release.
	dropLo, dropHi int
	depth          int        // subgraph nesting while parsing
	mu             sync.Mutex // guards external
	external       map[string]*externalFile
}

// Graph is a GraphProto: nodes in topological order, initializers, inputs and
// outputs.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []*Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Node is a NodeProto.
type Node struct {
	Name       string
	OpType     string
	Domain     string
	Inputs     []string
	Outputs    []string
	Attributes []Attribute
}

// Attribute is an AttributeProto; the scalar, list, tensor and graph kinds
// are decoded (a subgraph's initializers, like the main graph's, are views).
type Attribute struct {
	Name    string
	Type    AttributeType
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings [][]byte
	// G is a GRAPH attribute (an If's then_branch and else_branch, a Loop's
	// body); Graphs a GRAPHS one.
	G      *Graph
	Graphs []*Graph
}

// AttributeType is AttributeProto.AttributeType.
type AttributeType int32

// Attribute types.
const (
	AttrUndefined AttributeType = 0
	AttrFloat     AttributeType = 1
	AttrInt       AttributeType = 2
	AttrString    AttributeType = 3
	AttrTensor    AttributeType = 4
	AttrGraph     AttributeType = 5
	AttrFloats    AttributeType = 6
	AttrInts      AttributeType = 7
	AttrStrings   AttributeType = 8
	AttrTensors   AttributeType = 9
	AttrGraphs    AttributeType = 10
)

// Attr returns the node's attribute called name.
func (n *Node) Attr(name string) (*Attribute, bool) {
	for i := range n.Attributes {
		if n.Attributes[i].Name == name {
			return &n.Attributes[i], true
		}
	}
	return nil, false
}

// ValueInfo is a graph input or output: a name, an element type and a shape
// whose dimensions are either a value (Dim ≥ 0) or a symbolic name (Param).
type ValueInfo struct {
	Name     string
	ElemType DataType
	Shape    []Dim
}

// Dim is one dimension of a ValueInfo's shape.
type Dim struct {
	Value int64  // -1 when unknown or symbolic
	Param string // the symbolic name, e.g. "batch_size"
}

// Open memory-maps the ONNX file at path and parses its structure.
// External-data files are opened on first use, relative to path's folder.
func Open(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("onnx %s: is a directory, want an .onnx file", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("onnx %s: empty file, want an ONNX model", path)
	}
	if int64(int(st.Size())) != st.Size() {
		return nil, fmt.Errorf("onnx %s: %d bytes is too large to map", path, st.Size())
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("onnx %s: mmap: %w", path, err)
	}
	m, err := parseMapped(path, b)
	if err != nil {
		_ = unix.Munmap(b) // fails only for a range Mmap did not return
		return nil, err
	}
	m.mapped = b
	m.size = st.Size()
	return m, nil
}

// Parse parses an ONNX model held in b, which must stay unchanged while the
// model is used. External data is looked up relative to the current folder.
func Parse(b []byte) (*Model, error) {
	m, err := parse("", b)
	if err != nil {
		return nil, err
	}
	m.size = int64(len(b))
	return m, nil
}

// Size is the model file's size in bytes.
func (m *Model) Size() int64 { return m.size }

// Dir is the folder external-data locations are relative to.
func (m *Model) Dir() string {
	if m.Path == "" {
		return "."
	}
	return filepath.Dir(m.Path)
}

// Close unmaps the model and its external-data files.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for _, e := range m.external {
		if err := e.close(); err != nil && first == nil {
			first = err
		}
	}
	m.external = nil
	if m.mapped != nil {
		if err := unix.Munmap(m.mapped); err != nil && first == nil {
			first = fmt.Errorf("onnx %s: munmap: %w", m.Path, err)
		}
		m.mapped = nil
	}
	return first
}

// Initializer returns the initializer called name.
func (g *Graph) Initializer(name string) (*Tensor, bool) {
	for _, t := range g.Initializers {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

func (m *Model) where() string {
	if m.Path == "" {
		return "onnx"
	}
	return "onnx " + m.Path
}

// Walk calls fn on g and then on every subgraph of its nodes' attributes,
// depth first.
func (g *Graph) Walk(fn func(*Graph)) {
	fn(g)
	for i := range g.Nodes {
		for _, a := range g.Nodes[i].Attributes {
			if a.G != nil {
				a.G.Walk(fn)
			}
			for _, sub := range a.Graphs {
				sub.Walk(fn)
			}
		}
	}
}
