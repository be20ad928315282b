package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// BenchmarkMatMul measures the weight GEMMs of one whisper-base window
// (M = 1500 frames) single-threaded; it reports GFLOP/s.
func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	shapes := []struct {
		name    string
		m, n, k int
	}{
		{"qkv", 1500, 1536, 512}, {"out", 1500, 512, 512}, {"fc1", 1500, 2048, 512}, {"fc2", 1500, 512, 2048},
		{"scores", 14, 1500, 64}, {"pv", 14, 64, 1500},
	}
	for _, sh := range shapes {
		w := make([]uint16, sh.n*sh.k)
		for i := range w {
			w[i] = bf16.FromFloat32FTZ(float32(r.NormFloat64()))
		}
		var pk Packed
		_ = PackBF16(&pk, w, sh.n, sh.k, sh.k)
		a32 := randSlice(r, sh.m*sh.k, 1)
		ab := make([]uint16, len(a32))
		Portable.ToBF16(ab, a32)
		c := make([]float32, sh.m*sh.n)
		flops := 2 * float64(sh.m*sh.n*sh.k)
		for _, isa := range isas() {
			if isa == Portable {
				continue
			}
			variants := []string{"f32"}
			if isa == AVX512BF16 {
				variants = []string{"bf16"}
			}
			for _, v := range variants {
				b.Run(fmt.Sprintf("%s/%s/%s", sh.name, isa, v), func(b *testing.B) {
					var s Scratch
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					cpu0 := threadCPU()
					for b.Loop() {
						if v == "bf16" {
							_ = isa.MatMulBF16(c, sh.n, ab, sh.k, sh.m, &pk, nil, false, &s)
						} else {
							_ = isa.MatMulF32(c, sh.n, a32, sh.k, sh.m, &pk, nil, false, &s)
						}
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					b.ReportMetric(flops*float64(b.N)/(threadCPU()-cpu0)/1e9, "GFLOP/cpu-s")
				})
			}
		}
	}
}

// threadCPU is the CPU time of the calling OS thread in seconds: on a busy
// shared machine, flops per CPU second shows the kernel's own speed.
func threadCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
