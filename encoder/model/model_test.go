package model

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// Accuracy bar of issue 3, against ONNX Runtime fp32.
const (
	minCosine = 0.9999
	maxRelAbs = 1e-2 // max |Δ| ≤ maxRelAbs · max |ref|
)

// compare returns the minimum per-frame cosine similarity and max|Δ|/max|ref|
// of got against ref, both [B, P, d].
func compare(got, ref []float32, d int) (minCos, relErr float64) {
	minCos = 1
	var maxRef, maxDiff float64
	for f := 0; f*d < len(ref); f++ {
		var dot, ng, nr float64
		for i := f * d; i < (f+1)*d; i++ {
			g, r := float64(got[i]), float64(ref[i])
			dot += g * r
			ng += g * g
			nr += r * r
			maxRef = math.Max(maxRef, math.Abs(r))
			maxDiff = math.Max(maxDiff, math.Abs(g-r))
			if math.IsNaN(g) {
				maxDiff = math.Inf(1)
			}
		}
		minCos = math.Min(minCos, dot/math.Sqrt(ng*nr))
	}
	return minCos, maxDiff / maxRef
}

// requireMatchesORT logs how close got is to ONNX Runtime's ref (both [B, P, d]) and fails t
// unless it meets the accuracy bar.
func requireMatchesORT(t *testing.T, got, ref []float32, d int) {
	t.Helper()
	cos, rel := compare(got, ref, d)
	t.Logf("min per-frame cosine %.7f, max|Δ|/max|ref| %.2e", cos, rel)
	if cos < minCosine || rel > maxRelAbs {
		t.Fatalf("vs ORT: min per-frame cosine %.7f (want ≥ %g), max|Δ|/max|ref| %.3g (want ≤ %g)", cos, minCosine, rel, maxRelAbs)
	}
}

// configs lists every kernel/activation combination, those this machine
// cannot run included: tests load them with loadOrSkip, which skips those
// with the reason, so a run on a smaller CPU says what it did not cover.
func configs() []Options {
	var out []Options
	for _, isa := range kernels.All() {
		if isa != kernels.AMX {
			out = append(out, Options{Threads: 2, Kernels: isa.String(), Activations: "fp32"})
		}
		if isa == kernels.Portable || isa >= kernels.AVX512BF16 {
			out = append(out, Options{Threads: 2, Kernels: isa.String(), Activations: "bf16"})
		}
	}
	return out
}

// loadOrSkip loads dir with o, skipping the test when o's kernels cannot run
// here; the encoder is closed when the test ends.
func loadOrSkip(t testing.TB, dir string, o Options) *Encoder {
	t.Helper()
	isa, err := kernels.ParseISA(o.Kernels)
	if err != nil {
		t.Fatal(err)
	}
	if err := isa.Check(); err != nil {
		t.Skipf("kernels %s/%s not run on this machine: %v", o.Kernels, o.Activations, err)
	}
	e, err := Load(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func encodeFile(t *testing.T, e *Encoder, in npy.Array) Tensor {
	t.Helper()
	out, err := e.Encode(context.Background(), Tensor{Shape: in.Shape, Data: in.Data})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStateDictVsORT stages the tiny fixture's PyTorch state dict and checks
// the encoder against ONNX Runtime's output for the opset-14 export of the
// same module, at batch 1 and 3, for every kernel/activation configuration.
func TestStateDictVsORT(t *testing.T) {
	dir := stageState(t, tinyConfig, readNPZ(t, filepath.Join(repo, "testdata/models/tiny-state.npz")))
	for _, o := range configs() {
		for _, b := range []string{"b1", "b3"} {
			t.Run(fmt.Sprintf("%s/%s/%s", o.Kernels, o.Activations, b), func(t *testing.T) {
				e := loadOrSkip(t, dir, o)
				in := readNPY(t, filepath.Join(repo, "testdata/golden/tiny_in_"+b+".npy"))
				ref := readNPY(t, filepath.Join(repo, "testdata/golden/tiny-op14_out_"+b+".npy"))
				out := encodeFile(t, e, in)
				requireMatchesORT(t, out.Data, ref.Data, tinyConfig.DModel)
			})
		}
	}
}

// TestEncodeInto: EncodeInto into a reused, garbage-filled buffer gives
// Encode's output bit for bit (the buffer holds the residual stream, so
// nothing may depend on its old contents), and a buffer of the wrong size is
// refused before any work.
func TestEncodeInto(t *testing.T) {
	dir := stageONNX(t, filepath.Join(repo, "testdata/models/tiny-op14.onnx"))
	in := readNPY(t, filepath.Join(repo, "testdata/golden/tiny_in_b3.npy"))
	mel := Tensor{Shape: in.Shape, Data: in.Data}
	for _, o := range configs() {
		t.Run(o.Kernels+"/"+o.Activations, func(t *testing.T) {
			e := loadOrSkip(t, dir, o)
			want, err := e.Encode(context.Background(), mel)
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]float32, len(want.Data))
			for round := range 2 {
				for i := range dst {
					dst[i] = float32(math.NaN())
				}
				if err := e.EncodeInto(context.Background(), dst, mel); err != nil {
					t.Fatal(err)
				}
				for i := range dst {
					if dst[i] != want.Data[i] {
						t.Fatalf("round %d: value %d = %g, Encode gave %g", round, i, dst[i], want.Data[i])
					}
				}
			}
			err = e.EncodeInto(context.Background(), dst[:len(dst)-1], mel)
			if err == nil || !strings.Contains(err.Error(), "output holds") {
				t.Fatalf("short output buffer: error %v", err)
			}
		})
	}
}

// TestOpFLOPs: the per-op counts add up to FLOPs, which for whisper-base is
// 87.4 GFLOP a window (stem 3.1 + 6 × 14.05).
func TestOpFLOPs(t *testing.T) {
	var sum float64
	for op := Op(0); op < numOps; op++ {
		sum += OpFLOPs(baseConfig, op)
	}
	if total := FLOPs(baseConfig); math.Abs(sum-total) > 1 || math.Abs(total/1e9-87.37) > 0.01 {
		t.Errorf("ops sum to %.4g, FLOPs %.4g, want both 87.37e9", sum, total)
	}
	if got := OpFLOPs(baseConfig, OpConv) / 1e9; math.Abs(got-3.097) > 0.001 {
		t.Errorf("conv %.4f GFLOP, want 3.097 (2·3000·240·512 + 2·1500·1536·512)", got)
	}
}
