package convert

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkStageBase stages the whisper-base-sized fp32 export made by
// `make bench-model` (skipped when absent) into a fresh cache per iteration.
// `make bench-stage` measures the whole process side by side with the seed
// pipeline; this one is for profiling (-cpuprofile).
func BenchmarkStageBase(b *testing.B) {
	src := os.Getenv("BENCH_ONNX")
	if src == "" {
		src = filepath.Join(os.Getenv("XDNA_CACHE"), "fixtures", "whisper-base-fp32.onnx")
	}
	st, err := os.Stat(src)
	if err != nil {
		b.Skipf("no benchmark model (make bench-model): %v", err)
	}
	b.SetBytes(st.Size())
	for b.Loop() {
		cache := b.TempDir()
		if _, err := Stage(context.Background(), Options{Source: src, CacheDir: cache, Logger: quiet, NoSync: true}); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(cache)
	}
}
