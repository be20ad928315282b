package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/cmd/internal/encodercli"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

const golden = "../../testdata/golden/"

func stageTiny(t *testing.T) string {
	t.Helper()
	res, err := convert.Stage(context.Background(), convert.Options{Source: stageModels + "tiny-op17.onnx", CacheDir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return res.Dir
}

func readArray(t *testing.T, path string) npy.Array {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := npy.Read(f, 1<<24)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEncodeCommand encodes the batch-3 golden input with the CLI and checks
// the .npy it writes against ONNX Runtime's output.
func TestEncodeCommand(t *testing.T) {
	dir := stageTiny(t)
	out := filepath.Join(t.TempDir(), "hidden.npy")
	if code, _ := runQuiet(t, "encode", "--weights", dir, "--in", golden+"tiny_in_b3.npy", "--out", out, "--threads", "2"); code != 0 {
		t.Fatalf("encode: exit %d", code)
	}
	got, ref := readArray(t, out), readArray(t, golden+"tiny-op17_out_b3.npy")
	if len(got.Shape) != 3 || got.Shape[0] != 3 || got.Shape[1] != 24 || got.Shape[2] != 32 {
		t.Fatalf("output shape %v, want [3 24 32]", got.Shape)
	}
	if cos, rel := encodercli.Agreement(got.Data, ref.Data, 32); cos < 0.9999 || rel > 1e-2 {
		t.Fatalf("vs ORT: min per-frame cosine %.7f, max|Δ|/max|ref| %.3g", cos, rel)
	}
}

func TestEncodeFailures(t *testing.T) {
	dir := stageTiny(t)
	tmp := t.TempDir()
	wrong := filepath.Join(tmp, "wrong.npy")
	f, _ := os.Create(wrong)
	npy.Write(f, npy.Array{Shape: []int{64, 48}, Data: make([]float32, 64*48)})
	f.Close()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no flags", []string{"encode"}, 2},
		{"unknown flag", []string{"encode", "--nope"}, 2},
		{"missing input", []string{"encode", "--weights", dir, "--in", filepath.Join(tmp, "none.npy"), "--out", filepath.Join(tmp, "o.npy")}, 1},
		{"wrong mel bins", []string{"encode", "--weights", dir, "--in", wrong, "--out", filepath.Join(tmp, "o.npy")}, 1},
		{"not staged", []string{"encode", "--weights", tmp, "--in", wrong, "--out", filepath.Join(tmp, "o.npy")}, 1},
		{"bad kernels", []string{"encode", "--weights", dir, "--kernels", "mmx", "--in", wrong, "--out", filepath.Join(tmp, "o.npy")}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := runQuiet(t, tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "o.npy")); !os.IsNotExist(err) {
		t.Errorf("a failed encode left an output file: %v", err)
	}
}
