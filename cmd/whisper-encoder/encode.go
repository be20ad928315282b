package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/internal/atomicfile"
)

func init() {
	register(command{
		name:    "encode",
		summary: "encode log-mel windows (.npy) into encoder hidden states (.npy) on the CPU",
		run:     runEncode,
	})
}

// modelFlags are the encoder options shared by encode, serve and bench.
type modelFlags struct {
	weights, kernels, activations *string
	threads                       *int
}

func addModelFlags(fs *flag.FlagSet) modelFlags {
	return modelFlags{
		weights:     fs.String("weights", "", "staged weights directory (output of `whisper-encoder stage`; required)"),
		threads:     fs.Int("threads", 0, "worker threads (default GOMAXPROCS)"),
		kernels:     fs.String("kernels", "auto", "kernel ISA: auto, avx512bf16, avx512, avx2 or portable"),
		activations: fs.String("activations", "auto", "GEMM activation precision: auto (bf16 on avx512bf16), bf16 or fp32"),
	}
}

// load loads the staged weights with the flags' options and says how long that took.
func (m modelFlags) load() (*model.Encoder, time.Duration, error) {
	t0 := time.Now()
	enc, err := model.Load(*m.weights, model.Options{Threads: *m.threads, Kernels: *m.kernels, Activations: *m.activations})
	return enc, time.Since(t0), err
}

func runEncode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("encode", flag.ContinueOnError)
	mf := addModelFlags(fs)
	in := fs.String("in", "", "input log-mel .npy, float32 [n_mels, frames] or [batch, n_mels, frames] (required)")
	out := fs.String("out", "", "output .npy, float32 [batch, positions, d_model] (required)")
	server := fs.String("server", "", "encode FILE (audio or log-mel .npy) on a running server instead: http://HOST:PORT or gRPC HOST:PORT")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *server != "" {
		return encodeRemote(ctx, *server, fs.Args(), *out)
	}
	if *mf.weights == "" || *in == "" || *out == "" || fs.NArg() > 0 {
		return usageError{errors.New("want --weights, --in and --out, and no arguments (see -h)")}
	}
	mel, err := readMel(*in)
	if err != nil {
		return err
	}
	enc, loaded, err := mf.load()
	if err != nil {
		return err
	}
	defer enc.Close()
	t1 := time.Now()
	hidden, err := enc.Encode(ctx, mel)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	took := time.Since(t1)
	if err := writeNPY(*out, npy.Array{Shape: hidden.Shape, Data: hidden.Data}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s %v → %s %v (%s, load %v, encode %v)\n",
		*in, mel.Shape, *out, hidden.Shape, enc.Backend(), loaded.Round(time.Millisecond), took.Round(time.Millisecond))
	return nil
}

// readMel reads a log-mel .npy as [batch, n_mels, frames] (a 2-D array is one window).
func readMel(path string) (model.Tensor, error) {
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

// writeNPY writes a to path through a temporary file and a rename.
func writeNPY(path string, a npy.Array) error {
	if err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error { return npy.Write(w, a) }); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
