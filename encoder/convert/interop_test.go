package convert

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	reference "github.com/nlpodyssey/safetensors"

	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// A staged model.safetensors opens in an independent safetensors reader (a
// port of the reference implementation with its validation) with the same
// names, dtypes, shapes and bytes, and HF's "format": "pt" metadata.
func TestStandardReaderOpensStagedFile(t *testing.T) {
	r := stageFixture(t, "tiny-op17.onnx", "")
	raw, err := os.ReadFile(filepath.Join(r.Dir, staged.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reference.Deserialize(raw)
	if err != nil {
		t.Fatalf("reference reader: %v", err)
	}
	_, meta, err := reference.ReadMetadata(raw)
	if err != nil || meta.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v, %v", meta.Metadata(), err)
	}
	m, err := staged.Open(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	specs := m.Config().Tensors()
	if ref.Len() != len(specs) {
		t.Fatalf("reference reader sees %d tensors, want %d", ref.Len(), len(specs))
	}
	for _, sp := range specs {
		v, ok := ref.Tensor(sp.Name)
		if !ok {
			t.Fatalf("reference reader: no %s", sp.Name)
		}
		ours, _ := m.Tensor(sp.Name)
		shape := make([]int, len(v.Shape()))
		for i, d := range v.Shape() {
			shape[i] = int(d)
		}
		if v.DType().String() != "BF16" || !slices.Equal(shape, sp.Shape) || !bytes.Equal(v.Data(), leBytes(ours.Data)) {
			t.Errorf("%s: reference reader sees %s %v (%d bytes)", sp.Name, v.DType(), shape, len(v.Data()))
		}
	}
}
