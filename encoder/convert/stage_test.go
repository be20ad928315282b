package convert

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert/internal/npz"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

const models = "../../testdata/models/"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var tinyConfig = staged.Config{
	ModelType: "whisper", DModel: 32, EncoderLayers: 2, EncoderAttentionHeads: 4, EncoderFFNDim: 128,
	NumMelBins: 80, MaxSourcePositions: 24, ActivationFunction: "gelu", LayerNormEps: 1e-5, TorchDtype: "bfloat16",
}

func stageFixture(t *testing.T, name, cache string) Result {
	t.Helper()
	if cache == "" {
		cache = t.TempDir()
	}
	r, err := Stage(context.Background(), Options{Source: filepath.Join(models, name), CacheDir: cache, Logger: quiet, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readNPZ(t *testing.T, name string) map[string]npy.Array {
	t.Helper()
	a, err := npz.Read(filepath.Join(models, name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// expect is bf16 of the reference values: the PyTorch state dict, with the
// given overrides (fp16 or dequantized values) on top.
func expect(t *testing.T, overrides string) map[string]npy.Array {
	ref := readNPZ(t, "tiny-state.npz")
	if overrides != "" {
		for k, v := range readNPZ(t, overrides) {
			ref[k] = v
		}
	}
	return ref
}

// Every staged tensor equals bf16(the original PyTorch parameter), bit for
// bit, for each fp32 layout; fp16 and quantized sources equal bf16 of their
// fp16 or dequantized values, computed by the generator with numpy.
func TestStagedEqualsReference(t *testing.T) {
	tests := []struct {
		file, ref string
		precision staged.Precision
	}{
		{"tiny-op14.onnx", "", staged.Float32},
		{"tiny-op17.onnx", "", staged.Float32},
		{"tiny-op14-external.onnx", "", staged.Float32},
		{"tiny-op14-nonames.onnx", "", staged.Float32},
		{"tiny-op14-fp16.onnx", "tiny-op14-fp16-ref.npz", staged.Float16},
		{"tiny-int8.onnx", "tiny-int8-ref.npz", staged.Int8},
		{"tiny-uint8.onnx", "tiny-uint8-ref.npz", staged.Uint8},
		{"tiny-q4.onnx", "tiny-q4-ref.npz", staged.Q4},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := stageFixture(t, tt.file, "")
			if r.SourcePrecision != tt.precision || r.Lossy != (tt.precision != staged.Float32) {
				t.Errorf("precision %s lossy %v, want %s", r.SourcePrecision, r.Lossy, tt.precision)
			}
			if r.Config != tinyConfig {
				t.Errorf("config %+v, want %+v", r.Config, tinyConfig)
			}
			m, err := staged.Open(r.Dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.Verify(); err != nil {
				t.Fatal(err)
			}
			if tt.file == "tiny-op14-nonames.onnx" {
				for _, rec := range m.Manifest().Tensors {
					if rec.IdentifiedBy == "node name" || rec.Node != "" {
						t.Errorf("%s identified by %q via node %q in a graph without node names", rec.Name, rec.IdentifiedBy, rec.Node)
					}
					if strings.Contains(rec.Name, "k_proj") && rec.IdentifiedBy != "shared input" {
						t.Errorf("%s identified by %q, want shared input", rec.Name, rec.IdentifiedBy)
					}
					if strings.HasSuffix(rec.Name, "fc1.weight") && rec.IdentifiedBy != "bias" {
						t.Errorf("%s identified by %q, want bias", rec.Name, rec.IdentifiedBy)
					}
				}
			}
			want := expect(t, tt.ref)
			if len(want) != len(tinyConfig.Tensors()) {
				t.Fatalf("reference has %d tensors, config %d", len(want), len(tinyConfig.Tensors()))
			}
			for _, sp := range tinyConfig.Tensors() {
				got, err := m.Tensor(sp.Name)
				if err != nil {
					t.Fatal(err)
				}
				ref := want[sp.Name]
				if len(ref.Data) != len(got.Data) {
					t.Fatalf("%s: %d values, reference %d", sp.Name, len(got.Data), len(ref.Data))
				}
				for i, x := range ref.Data {
					if w := bf16.FromFloat32(x); got.Data[i] != w {
						t.Fatalf("%s[%d] = %#04x, want bf16(%g) = %#04x", sp.Name, i, got.Data[i], x, w)
					}
				}
			}
		})
	}
}
