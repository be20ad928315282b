// Package converttest stages models for other packages' tests.
package converttest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/xdna-whisper/xdna-whisper/encoder/bundled"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
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
