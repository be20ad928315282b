package onnx

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/x448/float16"
	"google.golang.org/protobuf/encoding/protowire"
)

const models = "../../testdata/models/"

func open(t *testing.T, name string) *Model {
	t.Helper()
	m, err := Open(filepath.Join(models, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func floats(t *testing.T, m *Model, name string) []float32 {
	t.Helper()
	tn, ok := m.Graph.Initializer(name)
	if !ok {
		t.Fatalf("no initializer %s", name)
	}
	out := make([]float32, tn.NumElements())
	if err := m.Float32s(tn, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStructure(t *testing.T) {
	m := open(t, "tiny-op14.onnx")
	if m.IRVersion < 7 || m.Opsets[""] != 14 || m.ProducerName != "pytorch" {
		t.Errorf("ir %d opset %v producer %q", m.IRVersion, m.Opsets, m.ProducerName)
	}
	if len(m.Graph.Inputs) != 1 || m.Graph.Inputs[0].Name != "input_features" || m.Graph.Inputs[0].ElemType != Float {
		t.Fatalf("inputs = %+v", m.Graph.Inputs)
	}
	in := m.Graph.Inputs[0].Shape
	if len(in) != 3 || in[0].Param != "batch_size" || in[1].Value != 80 || in[2].Value != 48 {
		t.Errorf("input shape = %+v", in)
	}
	if m.Graph.Outputs[0].Name != "last_hidden_state" {
		t.Errorf("outputs = %+v", m.Graph.Outputs)
	}
	conv, ok := m.Graph.Initializer("conv1.weight")
	if !ok || conv.DataType != Float || conv.Storage != StorageRaw || len(conv.Dims) != 3 || conv.Dims[1] != 80 {
		t.Fatalf("conv1.weight = %+v", conv)
	}
	var sawConv, sawConst bool
	for _, n := range m.Graph.Nodes {
		if n.Name == "/conv2/Conv" {
			sawConv = true
			if a, ok := n.Attr("strides"); !ok || len(a.Ints) != 1 || a.Ints[0] != 2 {
				t.Errorf("conv2 strides = %+v", a)
			}
		}
		if n.OpType == "Constant" {
			a, ok := n.Attr("value")
			if !ok || a.T == nil {
				t.Fatalf("Constant %s without value tensor", n.Name)
			}
			sawConst = true
		}
	}
	if !sawConv || !sawConst {
		t.Error("no /conv2/Conv node or Constant nodes")
	}
}

// Every storage of the same weights decodes to the same values: raw_data
// (opset 14), external data, float_data (opset 17), and FLOAT16 in raw_data
// and in int32_data equal fp16(fp32 value).
func TestStorages(t *testing.T) {
	raw := open(t, "tiny-op14.onnx")
	ext := open(t, "tiny-op14-external.onnx")
	typed := open(t, "tiny-op17.onnx")
	half := open(t, "tiny-op14-fp16.onnx")
	for _, name := range []string{"conv1.weight", "conv2.weight", "layers.1.fc1.bias", "layer_norm.weight", "layers.0.fc2.bias", "embed_positions.weight"} {
		want := floats(t, raw, name)
		for _, c := range []struct {
			m       *Model
			storage Storage
		}{{ext, StorageExternal}, {typed, 0}, {half, 0}} {
			tn, _ := c.m.Graph.Initializer(name)
			if c.storage != 0 && tn.Storage != c.storage {
				t.Errorf("%s in %s: storage %v, want %v", name, c.m.Path, tn.Storage, c.storage)
			}
			got := floats(t, c.m, name)
			for i := range want {
				w := want[i]
				if c.m == half {
					w = float16.Fromfloat32(w).Float32()
				}
				if got[i] != w {
					t.Fatalf("%s in %s [%d] = %g, want %g", name, c.m.Path, i, got[i], w)
				}
			}
		}
	}
	for _, c := range []struct {
		m       *Model
		name    string
		storage Storage
	}{{typed, "conv2.weight", StorageTyped}, {half, "conv1.weight", StorageTyped}, {half, "conv2.weight", StorageRaw}} {
		tn, _ := c.m.Graph.Initializer(c.name)
		if tn.Storage != c.storage {
			t.Errorf("%s in %s: storage %v, want %v", c.name, c.m.Path, tn.Storage, c.storage)
		}
	}
	tn, _ := typed.Graph.Initializer("conv2.weight")
	if b, ok, err := typed.Bytes(tn); err != nil || !ok || int64(len(b)) != tn.ByteSize() {
		t.Errorf("packed float_data is not contiguous: %d bytes, ok %v, %v", len(b), ok, err)
	}
	tn, _ = half.Graph.Initializer("conv1.weight")
	if _, ok, _ := half.Bytes(tn); ok {
		t.Error("FLOAT16 in int32_data reported as contiguous bytes")
	}
}

func TestInt64s(t *testing.T) {
	m := open(t, "tiny-op14.onnx")
	found := false
	for _, n := range m.Graph.Nodes {
		if n.Name == "/layers.0/self_attn/Constant_5" {
			a, _ := n.Attr("value")
			v, err := m.Int64s(a.T)
			if err != nil || len(v) != 1 || v[0] != 4 {
				t.Errorf("heads constant = %v, %v; want [4]", v, err)
			}
			found = true
		}
	}
	if !found {
		t.Error("no /layers.0/self_attn/Constant_5")
	}
	w, _ := m.Graph.Initializer("conv1.weight")
	if _, err := m.Int64s(w); err == nil {
		t.Error("Int64s of a FLOAT tensor: no error")
	}
}

func copyTo(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(models, name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExternalDataErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"missing data file", func(dir string) {}, "no such file"},
		{"short data file", func(dir string) {
			p := copyTo(t, dir, "tiny-op14-external.onnx_data")
			os.Truncate(p, 1000)
		}, "is 1000 bytes, the tensor needs bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := copyTo(t, dir, "tiny-op14-external.onnx")
			tt.setup(dir)
			m, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var firstErr error
			for _, tn := range m.Graph.Initializers {
				if err := m.Float32s(tn, make([]float32, tn.NumElements())); err != nil {
					firstErr = err
					break
				}
			}
			if firstErr == nil || !strings.Contains(firstErr.Error(), tt.want) || !strings.Contains(firstErr.Error(), "tensor \"") {
				t.Fatalf("error = %v, want it to name the tensor and contain %q", firstErr, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(models, "tiny-op14.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "not an ONNX model"},
		{"text", []byte("hello, world: this is not a model\n"), "not"},
		{"truncated", good[:len(good)/2], "not a valid ONNX model"},
		{"truncated inside a tensor", good[:len(good)-40000], "not a valid ONNX model"},
		{"safetensors header", []byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}, "not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want %q", err, tt.want)
			}
		})
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "cut.onnx")
	os.WriteFile(p, good[:len(good)-1], 0o644)
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Open of a truncated file = %v, want an error naming it", err)
	}
}

// tensorProto builds a TensorProto by hand for the size checks.
func tensorProto(dims []uint64, dtype uint64, raw []byte, extra ...byte) []byte {
	var b []byte
	for _, d := range dims {
		b = append(b, 0x08)
		b = appendVarint(b, d)
	}
	b = append(b, 0x10)
	b = appendVarint(b, dtype)
	b = append(b, 0x42, 1, 'w') // name "w"
	if raw != nil {
		b = append(b, 0x4a)
		b = appendVarint(b, uint64(len(raw)))
		b = append(b, raw...)
	}
	return append(b, extra...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// modelWith wraps one initializer in a graph in a model.
func modelWith(tensor []byte) []byte {
	g := append([]byte{0x2a}, appendVarint(nil, uint64(len(tensor)))...)
	g = append(g, tensor...)
	m := []byte{0x08, 8, 0x3a}
	m = appendVarint(m, uint64(len(g)))
	return append(m, g...)
}

func TestTensorSizeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"raw too short", tensorProto([]uint64{2, 3}, 1, make([]byte, 20)), "FLOAT dims [2 3] need 24 bytes, raw_data holds 20"},
		{"raw too long", tensorProto([]uint64{2}, 1, make([]byte, 12)), "need 8 bytes, raw_data holds 12"},
		{"overflowing dims", tensorProto([]uint64{1 << 32, 1 << 32, 1 << 32}, 1, make([]byte, 4)), "more than 1099511627776 elements"},
		{"negative dim", tensorProto([]uint64{math.MaxUint64}, 1, nil), "negative dimension"},
		{"no data", tensorProto([]uint64{4}, 1, nil), "need 4 elements, the tensor stores none"},
		{"typed count", tensorProto([]uint64{3}, 1, nil, 0x22, 8, 0, 0, 0, 0, 0, 0, 0, 0), "need 3 elements, the typed field holds 2"},
		{"wrong typed field", tensorProto([]uint64{1}, 1, nil, 0x28, 1), "FLOAT data in field 5, want field 4"},
		{"external without location", tensorProto([]uint64{1}, 1, nil, 0x70, 1), "without a location"},
		{"unsupported raw type", tensorProto([]uint64{1}, 8, []byte{1}), "STRING in raw_data is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(modelWith(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `tensor "w"`) {
				t.Fatalf("Parse error = %v, want it to name tensor \"w\" and contain %q", err, tt.want)
			}
		})
	}
	ok := tensorProto([]uint64{2}, 1, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40})
	m, err := Parse(modelWith(ok))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 2)
	if err := m.Float32s(m.Graph.Initializers[0], got); err != nil || got[0] != 1 || got[1] != 2 {
		t.Errorf("hand-built tensor = %v, %v", got, err)
	}
}

func TestExternalLocationMustStayInside(t *testing.T) {
	ext := func(loc string) []byte {
		kv := func(k, v string) []byte {
			e := append([]byte{0x0a, byte(len(k))}, k...)
			e = append(e, 0x12, byte(len(v)))
			e = append(e, v...)
			return append([]byte{0x6a, byte(len(e))}, e...)
		}
		extra := append(kv("location", loc), 0x70, 1)
		return tensorProto([]uint64{1}, 1, nil, extra...)
	}
	for _, loc := range []string{"../secret", "/etc/passwd"} {
		m, err := Parse(modelWith(ext(loc)))
		if err != nil {
			t.Fatal(err)
		}
		err = m.Float32s(m.Graph.Initializers[0], make([]float32, 1))
		if err == nil || !strings.Contains(err.Error(), "not a path inside the model's folder") {
			t.Errorf("location %q: error = %v", loc, err)
		}
	}
}

// External data reached through a symlink (of the file, or of a folder on its
// way) that leads outside the model's folder is refused; a symlink staying
// inside is fine.
func TestExternalDataSymlinkMustStayInside(t *testing.T) {
	outside := t.TempDir()
	copyTo(t, outside, "tiny-op14-external.onnx_data")
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) string // returns the model path
		escape bool
	}{
		{"file symlink out", func(t *testing.T, dir string) string {
			p := copyTo(t, dir, "tiny-op14-external.onnx")
			mustSymlink(t, filepath.Join(outside, "tiny-op14-external.onnx_data"), filepath.Join(dir, "tiny-op14-external.onnx_data"))
			return p
		}, true},
		{"relative symlink out", func(t *testing.T, dir string) string {
			sub := filepath.Join(dir, "m")
			os.Mkdir(sub, 0o755)
			copyTo(t, dir, "tiny-op14-external.onnx_data")
			p := copyTo(t, sub, "tiny-op14-external.onnx")
			mustSymlink(t, "../tiny-op14-external.onnx_data", filepath.Join(sub, "tiny-op14-external.onnx_data"))
			return p
		}, true},
		{"symlink inside", func(t *testing.T, dir string) string {
			p := copyTo(t, dir, "tiny-op14-external.onnx")
			os.Mkdir(filepath.Join(dir, "blobs"), 0o755)
			copyTo(t, filepath.Join(dir, "blobs"), "tiny-op14-external.onnx_data")
			mustSymlink(t, "blobs/tiny-op14-external.onnx_data", filepath.Join(dir, "tiny-op14-external.onnx_data"))
			return p
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Open(tt.setup(t, t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var firstErr error
			for _, tn := range m.Graph.Initializers {
				if firstErr = m.Float32s(tn, make([]float32, tn.NumElements())); firstErr != nil {
					break
				}
			}
			if !tt.escape {
				if firstErr != nil {
					t.Fatal(firstErr)
				}
				return
			}
			if firstErr == nil || !strings.Contains(firstErr.Error(), `leads outside the model's folder`) || !strings.Contains(firstErr.Error(), `tensor "`) {
				t.Fatalf("error = %v, want a refusal naming the tensor", firstErr)
			}
			if testing.Verbose() {
				t.Log(firstErr)
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateInitializerNames(t *testing.T) {
	a := tensorProto([]uint64{1}, 1, []byte{0, 0, 0x80, 0x3f})
	b := tensorProto([]uint64{1}, 1, []byte{0, 0, 0, 0x40})
	g := append([]byte{0x2a}, appendVarint(nil, uint64(len(a)))...)
	g = append(g, a...)
	g = append(g, 0x2a)
	g = appendVarint(g, uint64(len(b)))
	g = append(g, b...)
	model := append(appendVarint([]byte{0x08, 8, 0x3a}, uint64(len(g))), g...)
	_, err := Parse(model)
	if err == nil || !strings.Contains(err.Error(), `duplicate name "w"`) || !strings.Contains(err.Error(), "initializer 1") {
		t.Fatalf("Parse error = %v, want a duplicate-name error naming \"w\"", err)
	}
}

// The merged decoder of hf-micro holds one If whose branches are parsed
// subgraphs: nodes that use the outer graph's initializers by name.
func TestSubgraphs(t *testing.T) {
	m := open(t, "hf-micro/onnx/decoder_model_merged.onnx")
	if len(m.Graph.Nodes) != 1 || m.Graph.Nodes[0].OpType != "If" {
		t.Fatalf("main graph has %d nodes, want one If", len(m.Graph.Nodes))
	}
	then, ok1 := m.Graph.Nodes[0].Attr("then_branch")
	els, ok2 := m.Graph.Nodes[0].Attr("else_branch")
	if !ok1 || !ok2 || then.G == nil || els.G == nil || then.Type != AttrGraph {
		t.Fatalf("If attributes: then %v, else %v: want two graphs", then, els)
	}
	outer := map[string]bool{}
	for _, tn := range m.Graph.Initializers {
		outer[tn.Name] = true
	}
	for _, g := range []*Graph{then.G, els.G} {
		if len(g.Nodes) < 100 || len(g.Outputs) == 0 {
			t.Fatalf("branch %s: %d nodes, %d outputs", g.Name, len(g.Nodes), len(g.Outputs))
		}
		uses := 0
		for _, n := range g.Nodes {
			for _, in := range n.Inputs {
				if outer[in] {
					uses++
				}
			}
		}
		if uses == 0 {
			t.Errorf("branch %s uses no outer initializer", g.Name)
		}
	}
	graphs := 0
	m.Graph.Walk(func(*Graph) { graphs++ })
	if graphs != 3 {
		t.Errorf("Walk visited %d graphs, want 3", graphs)
	}
}

// Subgraphs nested deeper than maxGraphDepth are refused, not recursed into.
func TestSubgraphDepth(t *testing.T) {
	var g []byte // GraphProto{node: {attribute: {name "b", type GRAPH, g: inner}}}
	for range maxGraphDepth + 1 {
		attr := protowire.AppendTag(nil, fieldAttrName, protowire.BytesType)
		attr = protowire.AppendString(attr, "b")
		attr = protowire.AppendTag(attr, fieldAttrType, protowire.VarintType)
		attr = protowire.AppendVarint(attr, uint64(AttrGraph))
		attr = protowire.AppendTag(attr, fieldAttrG, protowire.BytesType)
		attr = protowire.AppendBytes(attr, g)
		node := protowire.AppendTag(nil, fieldNodeOpType, protowire.BytesType)
		node = protowire.AppendString(node, "If")
		node = protowire.AppendTag(node, fieldNodeAttribute, protowire.BytesType)
		node = protowire.AppendBytes(node, attr)
		g = protowire.AppendTag(nil, fieldNode, protowire.BytesType)
		g = protowire.AppendBytes(g, node)
	}
	b := protowire.AppendTag(nil, fieldIRVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, 8)
	b = protowire.AppendTag(b, fieldGraph, protowire.BytesType)
	b = protowire.AppendBytes(b, g)
	_, err := Parse(b)
	if err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("Parse of %d nested graphs: %v, want a nesting error", maxGraphDepth+1, err)
	}
}
