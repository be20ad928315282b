// Package converttest stages models for other packages' tests.
package converttest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/xdna-whisper/xdna-whisper/encoder/bundled"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer/tokenizertest"
)

// Demo stages the bundled demo model (encoder/bundled: d_model 64, 2 layers, 80 mel bins)
// under dir — its ONNX file in dir/src, the weights cache in dir/cache — and returns the
// staged weights directory.
func Demo(dir string) (string, error) {
	src, err := bundled.WriteTo(filepath.Join(dir, "src"))
	if err != nil {
		return "", fmt.Errorf("stage the demo model: %w", err)
	}
	r, err := convert.Stage(context.Background(), convert.Options{
		Source: src, CacheDir: filepath.Join(dir, "cache"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return "", fmt.Errorf("stage the demo model: %w", err)
	}
	return r.Dir, nil
}

// Micro stages the committed whole-model fixture testdata/models/hf-micro
// (fixture: its path from the caller; d_model 64, 2 encoder and 2 decoder
// layers, a 1,864-token byte-level vocabulary) under dir, with a generated
// byte-level tokenizer.json (the fixture has none), and returns the staged
// directory: encoder, decoder, tokenizer and generation config.
func Micro(fixture, dir string) (string, error) {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"config.json", "generation_config.json", "preprocessor_config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(fixture, name))
		if err != nil {
			return "", fmt.Errorf("stage the micro model: %w", err)
		}
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			return "", err
		}
	}
	tok, err := tokenizertest.ByteLevelJSON(tokenizer.DefaultLanguages)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, tokenizer.HFTokenizerJSON), tok, 0o644); err != nil {
		return "", err
	}
	r, err := convert.Stage(context.Background(), convert.Options{
		Source: src, CacheDir: filepath.Join(dir, "cache"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return "", fmt.Errorf("stage the micro model: %w", err)
	}
	return r.Dir, nil
}
