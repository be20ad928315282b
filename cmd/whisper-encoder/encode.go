package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/xdna-whisper/xdna-whisper/cmd/internal/encodercli"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

func init() {
	register(command{
		name:    "encode",
		summary: "encode log-mel windows (.npy) into encoder hidden states (.npy) on the CPU",
		run:     runEncode,
	})
}

func runEncode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("encode", flag.ContinueOnError)
	mf := encodercli.AddModelFlags(fs)
	in := fs.String("in", "", "input log-mel .npy, float32 [n_mels, frames] or [batch, n_mels, frames] (required)")
	out := fs.String("out", "", "output .npy, float32 [batch, positions, d_model] (required)")
	server := fs.String("server", "", "encode FILE (audio or log-mel .npy) on a running server instead: http(s)://HOST:PORT or gRPC HOST:PORT")
	remote := addRemoteFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *server != "" {
		return encodeRemote(ctx, remote, *server, fs.Args(), *out)
	}
	if *mf.Weights == "" || *in == "" || *out == "" || fs.NArg() > 0 {
		return usageError{errors.New("want --weights, --in and --out, and no arguments (see -h)")}
	}
	mel, err := encodercli.ReadMel(*in)
	if err != nil {
		return err
	}
	enc, loaded, err := mf.Load()
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
	if err := encodercli.WriteNPY(*out, npy.Array{Shape: hidden.Shape, Data: hidden.Data}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s %v → %s %v (%s, load %v, encode %v)\n",
		*in, mel.Shape, *out, hidden.Shape, enc.Backend(), loaded.Round(time.Millisecond), took.Round(time.Millisecond))
	return nil
}
