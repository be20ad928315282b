package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

var baseConfig = staged.Config{
	ModelType: "whisper", DModel: 512, EncoderLayers: 6, EncoderAttentionHeads: 8, EncoderFFNDim: 2048,
	NumMelBins: 80, MaxSourcePositions: 1500, ActivationFunction: "gelu", LayerNormEps: 1e-5, TorchDtype: "bfloat16",
}

// randomState is a state dict of cfg's shapes with Whisper-like magnitudes.
func randomState(cfg staged.Config, seed uint64) map[string]npy.Array {
	r := rand.New(rand.NewPCG(seed, seed))
	st := map[string]npy.Array{}
	for _, s := range cfg.Tensors() {
		n := numel(s.Shape)
		a := npy.Array{Shape: s.Shape, Data: make([]float32, n)}
		scale, offset := 0.02, 0.0
		if len(s.Shape) == 1 && (contains(s.Name, "norm.weight")) {
			scale, offset = 0.05, 1
		}
		for i := range a.Data {
			a.Data[i] = float32(offset + scale*r.NormFloat64())
		}
		st[s.Name] = a
	}
	return st
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// BenchmarkEncodeBase encodes one 30 s window with a whisper-base-sized
// encoder of random weights and reports GFLOP/s and the per-op breakdown.
func BenchmarkEncodeBase(b *testing.B) {
	dir := stageState(b, baseConfig, randomState(baseConfig, 1))
	r := rand.New(rand.NewPCG(2, 2))
	mel := Tensor{Shape: []int{1, 80, 3000}, Data: make([]float32, 80*3000)}
	for i := range mel.Data {
		mel.Data[i] = float32(r.Float64()*3 - 1.5)
	}
	for _, threads := range []int{1, 2} {
		for _, o := range configs() {
			if o.Kernels == "portable" {
				continue
			}
			o.Threads = threads
			b.Run(fmt.Sprintf("threads%d/%s/%s", threads, o.Kernels, o.Activations), func(b *testing.B) {
				e := loadOrSkip(b, dir, o)
				if _, err := e.Encode(context.Background(), mel); err != nil {
					b.Fatal(err)
				}
				e.ResetOpTimes()
				cpu0 := processCPU()
				for b.Loop() {
					if _, err := e.Encode(context.Background(), mel); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(FLOPs(baseConfig)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(float64(processCPU()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
				for op, d := range e.OpTimes() {
					b.ReportMetric(float64(d.CPU.Milliseconds())/float64(b.N), "cpu-ms/"+fmt.Sprint(int(op)))
				}
			})
		}
	}
}
