// Command whisper-bench is the developer benchmark tool of the Whisper encoder:
// it measures the CPU encoder against ONNX Runtime (node, onnxruntime-node) and
// staging against the seed Python pipeline. It runs from a repository checkout
// (the reference scripts are under testdata/) and is built into no image; the
// product binary is whisper-encoder.
//
//	whisper-bench encoder --weights DIR [--ort MODEL.onnx]   # make bench-encoder
//	whisper-bench stage   --model MODEL.onnx [--large G]     # make bench-stage
//	whisper-bench transcribe --model HF_DIR [--concurrency 1,4,16]
//	whisper-bench serve-transcribe --target URL --pid PID   # make bench-transcribe-server
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

// command is one subcommand of whisper-bench.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands = []command{
	{"encoder", "measure the CPU encoder: ms per 30 s window, realtime factor, GFLOP/s, peak RSS, per-op times; optionally A/B against ONNX Runtime", runBench},
	{"stage", "measure `whisper-encoder stage` wall time and peak RSS side by side with the seed pipeline", runBenchStage},
	{"transcribe", "measure whole transcriptions (forced decode length): realtime factor, tokens/s and mean batch at several concurrencies, peak RSS", runBenchTranscribe},
	{"serve-transcribe", "send concurrent OpenAI transcriptions (multipart) to a running `whisper-encoder serve`: wall time and the server's peak RSS", runBenchServeTranscribe},
	{"decoder", "measure decode steps (tokens/s at several batch sizes) of the Go decoder, A/B against ONNX Runtime's decoder_with_past on the same weights", runBenchDecoder},
}

// usageError marks an error caused by bad command-line usage (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Println(version.String("whisper-bench"))
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := c.run(ctx, args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "whisper-bench %s: %v\n", c.name, err)
			if errors.As(err, new(usageError)) {
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "whisper-bench: unknown subcommand %q\n\n", args[0])
	usage()
	return 2
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: whisper-bench <subcommand> [flags]   (run from the repository root)\n\nsubcommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "  version   print version, commit and Go version")
	fmt.Fprintln(os.Stderr, "\nRun 'whisper-bench <subcommand> -h' for its flags.")
}
