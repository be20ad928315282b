package onnx

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from onnx.proto.
const (
	// ModelProto
	fieldIRVersion       = 1
	fieldProducerName    = 2
	fieldProducerVersion = 3
	fieldGraph           = 7
	fieldOpsetImport     = 8
	// OperatorSetIdProto
	fieldOpsetDomain  = 1
	fieldOpsetVersion = 2
	// GraphProto
	fieldNode              = 1
	fieldGraphName         = 2
	fieldInitializer       = 5
	fieldInput             = 11
	fieldOutput            = 12
	fieldSparseInitializer = 15
	// NodeProto
	fieldNodeInput     = 1
	fieldNodeOutput    = 2
	fieldNodeName      = 3
	fieldNodeOpType    = 4
	fieldNodeAttribute = 5
	fieldNodeDomain    = 7
	// AttributeProto
	fieldAttrName    = 1
	fieldAttrF       = 2
	fieldAttrI       = 3
	fieldAttrS       = 4
	fieldAttrT       = 5
	fieldAttrG       = 6
	fieldAttrFloats  = 7
	fieldAttrInts    = 8
	fieldAttrStrings = 9
	fieldAttrGraphs  = 11
	fieldAttrType    = 20
	// TensorProto
	fieldDims         = 1
	fieldDataType     = 2
	fieldSegment      = 3
	fieldFloatData    = 4
	fieldInt32Data    = 5
	fieldStringData   = 6
	fieldInt64Data    = 7
	fieldTensorName   = 8
	fieldRawData      = 9
	fieldDoubleData   = 10
	fieldUint64Data   = 11
	fieldExternalData = 13
	fieldDataLocation = 14
	// StringStringEntryProto
	fieldKey   = 1
	fieldValue = 2
	// ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto, Dimension
	fieldValueName  = 1
	fieldValueType  = 2
	fieldTensorType = 1
	fieldElemType   = 1
	fieldShape      = 2
	fieldDim        = 1
	fieldDimValue   = 1
	fieldDimParam   = 2
)

// field is one decoded protobuf field: its number, wire type, and value (v for
// varint and fixed types, b for length-delimited ones).
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// fields calls fn for each field of the message b, in order.
func fields(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		case protowire.StartGroupType:
			_, n = protowire.ConsumeGroup(num, b)
		default:
			return fmt.Errorf("field %d: unknown wire type %d", num, typ)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.StartGroupType {
			continue
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks that field f has wire type t.
func (f field) want(t protowire.Type, what string) error {
	if f.typ != t {
		return fmt.Errorf("%s (field %d): wire type %d, want %d", what, f.num, f.typ, t)
	}
	return nil
}

func (f field) bytes(what string) ([]byte, error) {
	return f.b, f.want(protowire.BytesType, what)
}

func (f field) str(what string) (string, error) {
	b, err := f.bytes(what)
	return string(b), err
}

func (f field) int64(what string) (int64, error) {
	return int64(f.v), f.want(protowire.VarintType, what)
}

// varints appends the int64 values of a repeated varint field, packed or not.
func (f field) varints(dst []int64, what string) ([]int64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, int64(f.v)), nil
	case protowire.BytesType:
		n, err := countVarints(f.b)
		if err != nil {
			return dst, fmt.Errorf("%s: %w", what, err)
		}
		dst = append(make([]int64, 0, len(dst)+n), dst...)
		for b := f.b; len(b) > 0; {
			v, k := protowire.ConsumeVarint(b)
			dst = append(dst, int64(v))
			b = b[k:]
		}
		return dst, nil
	}
	return dst, fmt.Errorf("%s (field %d): wire type %d, want varint or packed", what, f.num, f.typ)
}

// countVarints counts the varints packed in b and checks that they are well formed.
func countVarints(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		_, k := protowire.ConsumeVarint(b)
		if k < 0 {
			return 0, fmt.Errorf("packed varint %d: %w", n, protowire.ParseError(k))
		}
		b = b[k:]
		n++
	}
	return n, nil
}

func parse(path string, b []byte) (*Model, error) {
	return parseInto(&Model{Path: path, Opsets: map[string]int64{}}, b)
}

// parseMapped parses a memory-mapped file, dropping each initializer's pages
// from the resident set once its header is read: the page cache maps large
// folios whole, so reading a tensor's header would otherwise keep megabytes
// of its payload resident.
func parseMapped(path string, b []byte) (*Model, error) {
	return parseInto(&Model{Path: path, Opsets: map[string]int64{}, mapped: b}, b)
}

func parseInto(m *Model, b []byte) (*Model, error) {
	var graph []byte
	sawGraph := false
	err := fields(b, func(f field) (err error) {
		switch f.num {
		case fieldIRVersion:
			m.IRVersion, err = f.int64("ir_version")
		case fieldProducerName:
			m.ProducerName, err = f.str("producer_name")
		case fieldProducerVersion:
			m.ProducerVersion, err = f.str("producer_version")
		case fieldGraph:
			graph, err = f.bytes("graph")
			sawGraph = true
		case fieldOpsetImport:
			err = m.parseOpset(f)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid ONNX model: %w", m.where(), err)
	}
	if !sawGraph || m.IRVersion <= 0 {
		return nil, fmt.Errorf("%s: not an ONNX model: want a ModelProto with ir_version and graph, found ir_version %d and %s", m.where(), m.IRVersion, map[bool]string{true: "a graph", false: "no graph"}[sawGraph])
	}
	err = m.parseGraph(&m.Graph, graph)
	m.flushDrop()
	if err != nil {
		return nil, fmt.Errorf("%s: graph: %w", m.where(), err)
	}
	return m, nil
}

func (m *Model) parseOpset(f field) error {
	b, err := f.bytes("opset_import")
	if err != nil {
		return err
	}
	var domain string
	var version int64
	err = fields(b, func(f field) (err error) {
		switch f.num {
		case fieldOpsetDomain:
			domain, err = f.str("opset_import.domain")
		case fieldOpsetVersion:
			version, err = f.int64("opset_import.version")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("opset_import: %w", err)
	}
	if domain == "ai.onnx" {
		domain = ""
	}
	m.Opsets[domain] = version
	return nil
}

// maxGraphDepth bounds the nesting of subgraphs (If, Loop, Scan bodies):
// real exports nest one or two levels; a crafted file must not recurse deeply.
const maxGraphDepth = 8

// parseGraph parses a GraphProto into g: the main graph, or a subgraph of a
// node attribute (m.depth levels down).
func (m *Model) parseGraph(g *Graph, b []byte) error {
	if m.depth >= maxGraphDepth {
		return fmt.Errorf("subgraphs nested more than %d levels deep", maxGraphDepth)
	}
	m.depth++
	defer func() { m.depth-- }()
	seen := map[string]int{}
	return fields(b, func(f field) error {
		switch f.num {
		case fieldNode:
			mb, err := f.bytes("node")
			if err != nil {
				return err
			}
			n, err := m.parseNode(mb)
			if err != nil {
				return fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			g.Nodes = append(g.Nodes, n)
		case fieldGraphName:
			s, err := f.str("name")
			g.Name = s
			return err
		case fieldInitializer:
			mb, err := f.bytes("initializer")
			if err != nil {
				return err
			}
			t, err := m.parseTensor(mb)
			if err != nil {
				return fmt.Errorf("initializer %d: %w", len(g.Initializers), err)
			}
			if first, dup := seen[t.Name]; dup {
				return fmt.Errorf("initializer %d: duplicate name %q (initializer %d has it too): which one the graph uses is ambiguous", len(g.Initializers), t.Name, first)
			}
			seen[t.Name] = len(g.Initializers)
			g.Initializers = append(g.Initializers, t)
			m.drop(mb)
		case fieldInput, fieldOutput:
			mb, err := f.bytes("input/output")
			if err != nil {
				return err
			}
			v, err := parseValueInfo(mb)
			if err != nil {
				return fmt.Errorf("input/output %q: %w", v.Name, err)
			}
			if f.num == fieldInput {
				g.Inputs = append(g.Inputs, v)
			} else {
				g.Outputs = append(g.Outputs, v)
			}
		case fieldSparseInitializer:
			return errors.New("sparse_initializer is not supported")
		}
		return nil
	})
}

func (m *Model) parseNode(b []byte) (Node, error) {
	var n Node
	err := fields(b, func(f field) (err error) {
		var s string
		switch f.num {
		case fieldNodeInput:
			s, err = f.str("input")
			n.Inputs = append(n.Inputs, s)
		case fieldNodeOutput:
			s, err = f.str("output")
			n.Outputs = append(n.Outputs, s)
		case fieldNodeName:
			n.Name, err = f.str("name")
		case fieldNodeOpType:
			n.OpType, err = f.str("op_type")
		case fieldNodeDomain:
			n.Domain, err = f.str("domain")
		case fieldNodeAttribute:
			var ab []byte
			if ab, err = f.bytes("attribute"); err != nil {
				return err
			}
			var a Attribute
			if a, err = m.parseAttribute(ab); err != nil {
				return fmt.Errorf("attribute %q: %w", a.Name, err)
			}
			n.Attributes = append(n.Attributes, a)
		}
		return err
	})
	if err != nil {
		return n, fmt.Errorf("%q (%s): %w", n.Name, n.OpType, err)
	}
	return n, nil
}

func (m *Model) parseAttribute(b []byte) (Attribute, error) {
	var a Attribute
	err := fields(b, func(f field) (err error) {
		switch f.num {
		case fieldAttrName:
			a.Name, err = f.str("name")
		case fieldAttrType:
			var v int64
			v, err = f.int64("type")
			a.Type = AttributeType(v)
		case fieldAttrF:
			err = f.want(protowire.Fixed32Type, "f")
			a.F = math.Float32frombits(uint32(f.v))
		case fieldAttrI:
			a.I, err = f.int64("i")
		case fieldAttrS:
			a.S, err = f.bytes("s")
		case fieldAttrT:
			var tb []byte
			if tb, err = f.bytes("t"); err != nil {
				return err
			}
			a.T, err = m.parseTensor(tb)
		case fieldAttrG, fieldAttrGraphs:
			var gb []byte
			if gb, err = f.bytes("g"); err != nil {
				return err
			}
			sub := &Graph{}
			if err = m.parseGraph(sub, gb); err != nil {
				return fmt.Errorf("subgraph: %w", err)
			}
			if f.num == fieldAttrG {
				a.G = sub
			} else {
				a.Graphs = append(a.Graphs, sub)
			}
		case fieldAttrFloats:
			a.Floats, err = appendFloats(a.Floats, f)
		case fieldAttrInts:
			a.Ints, err = f.varints(a.Ints, "ints")
		case fieldAttrStrings:
			var s []byte
			s, err = f.bytes("strings")
			a.Strings = append(a.Strings, s)
		}
		return err
	})
	return a, err
}

func appendFloats(dst []float32, f field) ([]float32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(f.v))), nil
	case protowire.BytesType:
		if len(f.b)%4 != 0 {
			return dst, fmt.Errorf("packed floats: %d bytes, want a multiple of 4", len(f.b))
		}
		for i := 0; i < len(f.b); i += 4 {
			dst = append(dst, math.Float32frombits(le32(f.b[i:])))
		}
		return dst, nil
	}
	return dst, fmt.Errorf("floats (field %d): wire type %d, want fixed32 or packed", f.num, f.typ)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func parseValueInfo(b []byte) (ValueInfo, error) {
	var v ValueInfo
	err := fields(b, func(f field) (err error) {
		switch f.num {
		case fieldValueName:
			v.Name, err = f.str("name")
		case fieldValueType:
			var tb []byte
			if tb, err = f.bytes("type"); err != nil {
				return err
			}
			err = fields(tb, func(f field) error {
				if f.num != fieldTensorType {
					return nil
				}
				tt, err := f.bytes("tensor_type")
				if err != nil {
					return err
				}
				return v.parseTensorType(tt)
			})
		}
		return err
	})
	return v, err
}

func (v *ValueInfo) parseTensorType(b []byte) error {
	return fields(b, func(f field) error {
		switch f.num {
		case fieldElemType:
			e, err := f.int64("elem_type")
			v.ElemType = DataType(e)
			return err
		case fieldShape:
			sb, err := f.bytes("shape")
			if err != nil {
				return err
			}
			return fields(sb, func(f field) error {
				if f.num != fieldDim {
					return nil
				}
				db, err := f.bytes("dim")
				if err != nil {
					return err
				}
				d := Dim{Value: -1}
				err = fields(db, func(f field) (err error) {
					switch f.num {
					case fieldDimValue:
						d.Value, err = f.int64("dim_value")
					case fieldDimParam:
						d.Param, err = f.str("dim_param")
					}
					return err
				})
				v.Shape = append(v.Shape, d)
				return err
			})
		}
		return nil
	})
}
