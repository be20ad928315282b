package model

import (
	"archive/zip"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

const repo = "../.."

// readNPZ reads every float32 array of a NumPy .npz file (PyTorch state dict
// exported by testdata/gen), keyed by name without ".npy".
func readNPZ(t testing.TB, path string) map[string]npy.Array {
	t.Helper()
	z, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	out := map[string]npy.Array{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		a, err := npy.Read(r, 1<<28)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %s: %v", path, f.Name, err)
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out
}

func readNPY(t testing.TB, path string) npy.Array {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := npy.Read(f, 1<<28)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return a
}

// stageState writes a staged directory for cfg from float32 tensors with the
// canonical names (a PyTorch state dict): model.safetensors as BF16 (round to
// nearest even, encoder/bf16), config.json and manifest.json. It stands in
// for `whisper-encoder stage` when a test starts from a state dict.
func stageState(t testing.TB, cfg staged.Config, state map[string]npy.Array) string {
	t.Helper()
	dir := t.TempDir()
	specs := cfg.Tensors()
	infos := make([]safetensors.TensorInfo, len(specs))
	m := staged.Manifest{FormatVersion: staged.FormatVersion, Precision: "bfloat16", SourcePrecision: "float32"}
	for i, s := range specs {
		infos[i] = safetensors.TensorInfo{Name: s.Name, DType: safetensors.BF16, Shape: s.Shape}
		m.Tensors = append(m.Tensors, staged.TensorRecord{Name: s.Name, Shape: s.Shape, DType: "BF16"})
	}
	f, err := os.Create(filepath.Join(dir, staged.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	w, err := safetensors.NewWriter(f, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		a, ok := state[s.Name]
		if !ok {
			t.Fatalf("state dict has no %s", s.Name)
		}
		b := make([]uint16, len(a.Data))
		bf16.FromFloat32s(b, a.Data)
		raw := make([]byte, 2*len(b))
		for i, v := range b {
			binary.LittleEndian.PutUint16(raw[2*i:], v)
		}
		if _, err := w.Write(raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{staged.ConfigFile: cfg, staged.ManifestFile: m} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tinyConfig is the configuration of the tiny fixtures (testdata/models/fixtures.json).
var tinyConfig = staged.Config{
	ModelType: "whisper", DModel: 32, EncoderLayers: 2, EncoderAttentionHeads: 4, EncoderFFNDim: 128,
	NumMelBins: 80, MaxSourcePositions: 24, ActivationFunction: "gelu", LayerNormEps: 1e-5, TorchDtype: "bfloat16",
}
