package convert

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
)

// FuzzPlan feeds arbitrary models to the graph mapping and config inference:
// any parseable input must give a plan or an error, never a panic.
func FuzzPlan(f *testing.F) {
	dir := f.TempDir()
	for _, p := range []string{gunzipGraph(f, "whisper-tiny", dir), filepath.Join(models, "not-encoder-mlp.onnx")} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := onnx.Parse(b)
		if err != nil {
			return
		}
		if p, err := plan(m, 0); err == nil && len(p.weights) != len(p.config.Tensors()) {
			t.Fatalf("plan of %d weights for %d tensors", len(p.weights), len(p.config.Tensors()))
		}
	})
}
