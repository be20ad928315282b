package decoder

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"
)

// processCPU is the user+system CPU time of the process: on a shared
// machine it shows a step's own cost better than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStep times a decode step of b sequences at position 64, each
// over its own random window, on the committed fixture, or on the model
// directory $XDNA_BENCH_DECODER (e.g. make hf-fixture-base's), with the
// weights $XDNA_BENCH_WEIGHTS (Options.Weights: bf16, the default, or int8)
// and activations $XDNA_BENCH_ACTIVATIONS (Options.Activations, default auto).
func BenchmarkStep(b *testing.B) {
	dir := microDir
	if d := os.Getenv("XDNA_BENCH_DECODER"); d != "" {
		dir = d
	}
	d := load(b, dir, Options{Weights: os.Getenv("XDNA_BENCH_WEIGHTS"), Activations: os.Getenv("XDNA_BENCH_ACTIVATIONS")})
	cfg := d.Config()
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("%s/batch%d", filepath.Base(dir), n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			hidden := make([]float32, cfg.MaxSourcePositions*cfg.DModel)
			var prefill, step []Input
			for range n {
				for j := range hidden {
					hidden[j] = float32(r.NormFloat64())
				}
				x, err := d.NewCross(context.Background(), hidden, cfg.MaxSourcePositions)
				if err != nil {
					b.Fatal(err)
				}
				s, _ := d.NewSequence(x)
				prefill = append(prefill, Input{Seq: s, Tokens: make([]int, 64)})
				step = append(step, Input{Seq: s, Tokens: []int{r.IntN(cfg.Vocab)}})
			}
			batch := d.NewBatch()
			if _, err := batch.Step(context.Background(), prefill); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := processCPU()
			// labelled for pprof -tagfocus phase=step (the setup is heavier)
			pprof.Do(context.Background(), pprof.Labels("phase", "step"), func(ctx context.Context) {
				for range b.N {
					for _, in := range step {
						in.Seq.Truncate(64)
					}
					if _, err := batch.Step(ctx, step); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(processCPU()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}
