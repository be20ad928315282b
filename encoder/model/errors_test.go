package model

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

func TestEncodeBadInput(t *testing.T) {
	dir := stageONNX(t, filepath.Join(repo, "testdata/models/tiny-op14.onnx"))
	e, err := Load(dir, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	good := func() Tensor { return Tensor{Shape: []int{2, 80, 48}, Data: make([]float32, 2*80*48)} }
	nan, inf := good(), good()
	nan.Data[80*48+3*48+7] = float32(math.NaN())
	inf.Data[5] = float32(math.Inf(-1))
	cases := []struct {
		name string
		in   Tensor
		want string
	}{
		{"rank", Tensor{Shape: []int{80, 48}, Data: make([]float32, 80*48)}, "want [batch, 80 mel bins, frames]"},
		{"mels", Tensor{Shape: []int{1, 128, 48}, Data: make([]float32, 128*48)}, "128 mel bins (shape [1 128 48]), model wants 80"},
		{"too many frames", Tensor{Shape: []int{1, 80, 49}, Data: make([]float32, 80*49)}, "49 frames (shape [1 80 49]), model takes 1 to 48"},
		{"no frames", Tensor{Shape: []int{1, 80, 0}}, "0 frames"},
		{"empty batch", Tensor{Shape: []int{0, 80, 48}}, "batch 0"},
		{"short data", Tensor{Shape: []int{1, 80, 48}, Data: make([]float32, 10)}, "holds 3840 values, data has 10"},
		{"nan", nan, "mel[1][3][7] is NaN"},
		{"inf", inf, "mel[0][0][5] is -Inf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Encode(context.Background(), tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Encode(ctx, good()); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled context: error %v", err)
	}
	e.Close()
	if _, err := e.Encode(context.Background(), good()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("after Close: error %v", err)
	}
}

// copyDir copies a staged directory so a test can damage it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{staged.WeightsFile, staged.ConfigFile, staged.ManifestFile} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadBadDir(t *testing.T) {
	src := stageONNX(t, filepath.Join(repo, "testdata/models/tiny-op14.onnx"))
	bf16OnAVX2, unsupported := "bf16 activations need", "not supported here"
	if !kernels.AVX2.Supported() {
		bf16OnAVX2 = unsupported
	}
	if kernels.AVX512BF16.Supported() {
		unsupported = "" // nothing is above this CPU: Load succeeds below
	}
	cases := []struct {
		name   string
		damage func(dir string)
		opts   Options
		want   string
	}{
		{"no weights", func(d string) { os.Remove(filepath.Join(d, staged.WeightsFile)) }, Options{}, "model.safetensors"},
		{"no manifest", func(d string) { os.Remove(filepath.Join(d, staged.ManifestFile)) }, Options{}, "incomplete: no manifest.json"},
		{"newer format", func(d string) {
			editFile(t, filepath.Join(d, staged.ManifestFile), `"formatVersion": 1`, `"formatVersion": 99`)
		}, Options{}, "format version 99 is newer"},
		{"config disagrees", func(d string) {
			editFile(t, filepath.Join(d, staged.ConfigFile), `"encoder_ffn_dim": 128`, `"encoder_ffn_dim": 96`)
		}, Options{}, "layers.0.fc1.weight"},
		{"truncated weights", func(d string) { os.Truncate(filepath.Join(d, staged.WeightsFile), 1000) }, Options{}, "staged dir"},
		{"unknown kernels", func(string) {}, Options{Kernels: "sse9"}, `unknown ISA "sse9"`},
		{"bad activations", func(string) {}, Options{Activations: "int4"}, `activations "int4"`},
		{"bf16 on avx2", func(string) {}, Options{Kernels: "avx2", Activations: "bf16"}, bf16OnAVX2},
		{"isa above this cpu", func(string) {}, Options{Kernels: "avx512bf16", Activations: "fp32"}, unsupported},
		{"amx", func(string) {}, Options{Kernels: "amx"}, "amx is not available: no AMX kernels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := copyDir(t, src)
			tc.damage(d)
			e, err := Load(d, tc.opts)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				e.Close()
				return
			}
			if err == nil {
				e.Close()
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
