package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// BenchmarkRowInt8 times one fp32 row times a weight [n][512] (a batch-1
// decode step's product) single-threaded with bf16 and int8 weights: "out"
// stays in L2, "vocab" (the tied output projection of whisper-base) streams
// from memory. It reports weights per CPU nanosecond and the weight bytes
// streamed per second.
func BenchmarkRowInt8(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, sh := range []struct {
		name string
		n, k int
	}{{"out", 512, 512}, {"fc1", 2048, 512}, {"vocab", 51865, 512}} {
		w := make([]uint16, sh.n*sh.k)
		for i := range w {
			w[i] = bf16.FromFloat32FTZ(float32(r.NormFloat64()))
		}
		var p16, p8 Packed
		_ = PackBF16(&p16, w, sh.n, sh.k, sh.k)
		_ = PackInt8(&p8, w, sh.n, sh.k, sh.k)
		a := randSlice(r, sh.k, 1)
		c := make([]float32, sh.n)
		for _, isa := range isas() {
			if isa == Portable {
				continue
			}
			for _, p := range []*Packed{&p16, &p8} {
				name := map[Format]string{BF16Pairs: "bf16", Int8Cols: "int8"}[p.Format]
				b.Run(fmt.Sprintf("%s/%s/%s", sh.name, isa, name), func(b *testing.B) {
					var s Scratch
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					cpu0 := threadCPU()
					for b.Loop() {
						_ = isa.MatMulF32(c, sh.n, a, sh.k, 1, p, nil, false, &s)
					}
					weights := float64(sh.n*sh.k) * float64(b.N)
					b.ReportMetric(weights/(threadCPU()-cpu0)/1e9, "weights/cpu-ns")
					b.ReportMetric(float64(p.Bytes())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}
