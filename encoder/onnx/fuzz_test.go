package onnx

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the reader: it must return an error or a
// model whose every tensor decodes, never panic, and never allocate more than
// the input justifies (decode buffers are sized from validated element counts).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"not-encoder-mlp.onnx", "tiny-op14-external.onnx"} {
		b, err := os.ReadFile(filepath.Join(models, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(modelWith(tensorProto([]uint64{2}, 1, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40})))
	f.Add(modelWith(tensorProto([]uint64{3}, 10, nil, 0x2a, 3, 1, 2, 3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		tensors := append([]*Tensor(nil), m.Graph.Initializers...)
		for _, n := range m.Graph.Nodes {
			for _, a := range n.Attributes {
				if a.T != nil {
					tensors = append(tensors, a.T)
				}
			}
		}
		for _, tn := range tensors {
			if tn.Storage == StorageExternal {
				continue // would read files next to the fuzzer's working directory
			}
			if tn.NumElements() > int64(len(b))*8 {
				t.Fatalf("tensor %q claims %d elements from %d input bytes", tn.Name, tn.NumElements(), len(b))
			}
			if err := m.Float32s(tn, make([]float32, tn.NumElements())); err != nil && tn.DataType.Size() > 0 {
				switch tn.DataType {
				case String, Complex64, Complex128, Uint4, Int4, Undefined:
				default:
					t.Fatalf("tensor %q validated but does not decode: %v", tn.Name, err)
				}
			}
		}
	})
}
