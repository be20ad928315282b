package convert

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
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

// BenchmarkStageRepoBase stages a whisper-base-shaped whole model in Hugging
// Face's layout (seeded random fp32 weights written by the benchmark: 72.6 M
// parameters, 290 MB, the multilingual vocabulary; no tokenizer files, so the
// built-in one) into a fresh cache per iteration.
func BenchmarkStageRepoBase(b *testing.B) {
	src := b.TempDir()
	writeBaseRepo(b, src)
	var size int64
	for _, n := range []string{"model.safetensors", "config.json"} {
		st, err := os.Stat(filepath.Join(src, n))
		if err != nil {
			b.Fatal(err)
		}
		size += st.Size()
	}
	b.SetBytes(size)
	before := cpuSeconds(b)
	for b.Loop() {
		cache := b.TempDir()
		if _, err := Stage(context.Background(), Options{Source: src, CacheDir: cache, Logger: quiet, NoSync: true}); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(cache)
	}
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric((cpuSeconds(b)-before)/float64(b.N), "cpu-s/op")
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// writeBaseRepo writes config.json and model.safetensors of a whisper-base
// shape (d 512, 6 + 6 layers, 8 heads, ffn 2048, vocabulary 51865) with
// seeded random values, a tensor at a time.
func writeBaseRepo(b *testing.B, dir string) {
	b.Helper()
	const d, layers, ffn, vocab = 512, 6, 2048, 51865
	cfg := map[string]any{
		"model_type": "whisper", "d_model": d, "encoder_layers": layers, "decoder_layers": layers,
		"encoder_attention_heads": 8, "decoder_attention_heads": 8, "encoder_ffn_dim": ffn, "decoder_ffn_dim": ffn,
		"num_mel_bins": 80, "max_source_positions": 1500, "max_target_positions": 448, "vocab_size": vocab,
		"activation_function": "gelu",
	}
	cj, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cj, 0o644); err != nil {
		b.Fatal(err)
	}
	enc := staged.Config{DModel: d, EncoderLayers: layers, EncoderAttentionHeads: 8, EncoderFFNDim: ffn, NumMelBins: 80, MaxSourcePositions: 1500}
	var specs []staged.TensorSpec
	for _, s := range enc.Tensors() {
		s.Name = "model.encoder." + s.Name
		specs = append(specs, s)
	}
	for _, s := range staged.DecoderTensorSpecs(d, layers, ffn, vocab, 448) {
		s.Name = "model.decoder." + s.Name
		specs = append(specs, s)
	}
	infos := make([]safetensors.TensorInfo, len(specs))
	for i, s := range specs {
		infos[i] = safetensors.TensorInfo{Name: s.Name, DType: safetensors.F32, Shape: s.Shape}
	}
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := safetensors.NewWriter(bw, infos, map[string]string{"format": "pt"})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 12))
	for _, s := range specs {
		buf := make([]byte, 4*numElems(s.Shape))
		for i := 0; i < len(buf); i += 4 {
			binary.LittleEndian.PutUint32(buf[i:], math.Float32bits(float32(rng.NormFloat64()*0.02)))
		}
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := errors.Join(w.Close(), bw.Flush()); err != nil {
		b.Fatal(err)
	}
}
