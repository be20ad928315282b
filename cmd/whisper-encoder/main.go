// Command whisper-encoder stages Whisper encoder weights (ONNX → BF16), encodes
// log-mel windows on the CPU or NPU backend, and serves the encoder over gRPC and HTTP.
//
// Each subcommand lives in its own file and registers itself from init.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/xdna-whisper/xdna-whisper/internal/redact"
	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

// command is one subcommand of whisper-encoder.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

// register adds a subcommand; it is called from init in each subcommand's file.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("whisper-encoder: subcommand registered twice: " + c.name)
	}
	commands[c.name] = c
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
		fmt.Println(version.String("whisper-encoder"))
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "whisper-encoder: unknown subcommand %q\n\n", args[0])
		usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "whisper-encoder %s: %s\n", c.name, redact.Text(err.Error()))
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: whisper-encoder <subcommand> [flags]\n\nsubcommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "  version      print version, commit and Go version")
	fmt.Fprintln(os.Stderr, "\nRun 'whisper-encoder <subcommand> -h' for its flags.")
}
