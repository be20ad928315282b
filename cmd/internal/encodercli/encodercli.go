// Package encodercli holds the command-line pieces the whisper-encoder command
// and the whisper-bench developer tool share: the flags that load an encoder,
// log-mel and hidden-state .npy files, and the agreement measure between two
// outputs. It is internal to cmd/: no library package depends on it.
package encodercli

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/internal/atomicfile"
)

// ModelFlags are the encoder options of every subcommand that loads one.
type ModelFlags struct {
	Weights, Kernels, Activations *string
	Threads                       *int
}

// AddModelFlags defines --weights, --threads, --kernels and --activations on fs.
func AddModelFlags(fs *flag.FlagSet) ModelFlags {
	return ModelFlags{
		Weights:     fs.String("weights", "", "staged weights directory (output of `whisper-encoder stage`; required)"),
		Threads:     fs.Int("threads", 0, "worker threads (default GOMAXPROCS)"),
		Kernels:     fs.String("kernels", "auto", "kernel family: auto (the best this CPU runs: avx512bf16 > avx512 > avx2 > portable), or one of them forced for A/B (portable is also called generic; amx is recognised but has no kernels yet)"),
		Activations: fs.String("activations", "auto", "GEMM activation precision: auto (bf16 on avx512bf16), bf16 or fp32"),
	}
}

// Load loads the staged weights with the flags' options and says how long that took.
func (m ModelFlags) Load() (*model.Encoder, time.Duration, error) {
	t0 := time.Now()
	enc, err := model.Load(*m.Weights, model.Options{Threads: *m.Threads, Kernels: *m.Kernels, Activations: *m.Activations})
	return enc, time.Since(t0), err
}

// ReadMel reads a log-mel .npy as [batch, n_mels, frames] (a 2-D array is one window).
func ReadMel(path string) (model.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return model.Tensor{}, err
	}
	defer f.Close()
	a, err := npy.Read(f, 1<<30)
	if err != nil {
		return model.Tensor{}, fmt.Errorf("%s: %w", path, err)
	}
	switch len(a.Shape) {
	case 2:
		return model.Tensor{Shape: append([]int{1}, a.Shape...), Data: a.Data}, nil
	case 3:
		return model.Tensor{Shape: a.Shape, Data: a.Data}, nil
	}
	return model.Tensor{}, fmt.Errorf("%s: shape %v, want [n_mels, frames] or [batch, n_mels, frames]", path, a.Shape)
}

// WriteNPY writes a to path through a temporary file and a rename.
func WriteNPY(path string, a npy.Array) error {
	if err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error { return npy.Write(w, a) }); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Agreement compares two outputs of d values a frame: the minimum per-frame
// cosine similarity and max|got−ref| / max|ref|.
func Agreement(got, ref []float32, d int) (minCos, relMax float64) {
	minCos, maxRef, maxDiff := 1.0, 0.0, 0.0
	for f := 0; f*d < len(ref) && f*d < len(got); f++ {
		var dot, ng, nr float64
		for i := f * d; i < (f+1)*d; i++ {
			g, r := float64(got[i]), float64(ref[i])
			dot, ng, nr = dot+g*r, ng+g*g, nr+r*r
			maxRef = math.Max(maxRef, math.Abs(r))
			maxDiff = math.Max(maxDiff, math.Abs(g-r))
		}
		minCos = math.Min(minCos, dot/math.Sqrt(ng*nr))
	}
	return minCos, maxDiff / maxRef
}
