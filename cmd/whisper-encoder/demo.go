package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/xdna-whisper/xdna-whisper/encoder/bundled"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
)

func init() {
	register(command{
		name:    "demo",
		summary: "stage the bundled demo model (embedded in the binary) and show what was staged",
		run:     runDemo,
	})
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	cache := fs.String("cache", "", "cache directory (default: a temporary one, removed afterwards)")
	clip := fs.String("audio", "", "speech clip (WAV or FLAC) the demo encodes through the server's HTTP API (default: the bundled "+bundled.SpeechName+", embedded in the binary)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{errors.New("demo takes no arguments")}
	}
	if *cache == "" {
		tmp, err := os.MkdirTemp("", "whisper-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*cache = tmp
	}
	r, err := stageDemo(ctx, *cache)
	if err != nil {
		return err
	}
	fmt.Printf("staged the bundled model (%s, %d bytes, embedded in the binary) into %s\n\n", bundled.Name, len(bundled.Model()), r.Dir)
	rep, err := convert.Inspect(r.Dir, 0)
	if err != nil {
		return err
	}
	printReport(os.Stdout, rep)
	name, wav := bundled.SpeechName, bundled.Speech()
	if *clip != "" {
		if wav, err = os.ReadFile(*clip); err != nil {
			return fmt.Errorf("demo speech clip: %w", err)
		}
		name = *clip
	}
	return demoServe(ctx, os.Stdout, r.Dir, name, wav)
}

// stageDemo writes the embedded model next to the cache and stages it.
func stageDemo(ctx context.Context, cache string) (convert.Result, error) {
	src, err := os.MkdirTemp("", "whisper-demo-src-")
	if err != nil {
		return convert.Result{}, err
	}
	defer os.RemoveAll(src)
	path, err := bundled.WriteTo(src)
	if err != nil {
		return convert.Result{}, err
	}
	return convert.Stage(ctx, convert.Options{
		Source: path, CacheDir: cache, ConverterVersion: converterVersion(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}
