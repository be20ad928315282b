// Package converttest stages models for other packages' tests.
package converttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/xdna-whisper/xdna-whisper/encoder/bundled"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
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

// DecoderPositions is the decoder's positional table in Hugging Face's layout.
const DecoderPositions = "model.decoder.embed_positions.weight"

// ShortContext writes to dst (created) the whole model in Hugging Face's
// layout at fixture (e.g. testdata/models/hf-micro) with its text context cut
// to textContext tokens: max_target_positions and max_length in config.json
// (and max_length in generation_config.json) become textContext and the
// decoder's positional table keeps its first textContext rows; every other
// weight and file is copied unchanged. With Whisper's default sample length
// of half the text context, random weights then decode short windows that
// pass the fallback thresholds at temperature 0 (greedy, deterministic).
func ShortContext(fixture, dst string, textContext int) error {
	if textContext < 8 {
		return fmt.Errorf("short context: text context: expected ≥ 8 tokens, found %d", textContext)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"} {
		if err := copyFile(filepath.Join(fixture, name), filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("short context: %w", err)
		}
	}
	edits := map[string]map[string]int{
		"config.json":            {"max_target_positions": textContext, "max_length": textContext},
		"generation_config.json": {"max_length": textContext},
	}
	for name, set := range edits {
		if err := editJSON(filepath.Join(fixture, name), filepath.Join(dst, name), set); err != nil {
			return fmt.Errorf("short context: %w", err)
		}
	}
	return truncatePositions(filepath.Join(fixture, "model.safetensors"), filepath.Join(dst, "model.safetensors"), textContext)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// editJSON copies the JSON object at src to dst with the fields of set
// replaced; each must exist in src.
func editJSON(src, dst string, set map[string]int) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // token ids stay integers
	var obj map[string]any
	if err := d.Decode(&obj); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	for k, v := range set {
		if _, ok := obj[k]; !ok {
			return fmt.Errorf("%s: expected a field %q, found none", src, k)
		}
		obj[k] = v
	}
	out, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(dst, append(out, '\n'), 0o644)
}

// truncatePositions copies the safetensors file src to dst with the first
// rows rows of DecoderPositions only.
func truncatePositions(src, dst string, rows int) error {
	f, err := safetensors.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	infos := f.Tensors()
	data := make([][]byte, len(infos))
	found := false
	for i, ti := range infos {
		t, err := f.Tensor(ti.Name)
		if err != nil {
			return err
		}
		data[i] = t.Data
		if ti.Name != DecoderPositions {
			continue
		}
		if len(ti.Shape) != 2 || ti.Shape[0] < rows {
			return fmt.Errorf("%s: %s: expected [≥ %d, d_model], found %v", src, ti.Name, rows, ti.Shape)
		}
		infos[i].Shape = []int{rows, ti.Shape[1]}
		data[i] = t.Data[:int64(len(t.Data))/int64(ti.Shape[0])*int64(rows)]
		found = true
	}
	if !found {
		return fmt.Errorf("%s: expected a tensor %s, found none", src, DecoderPositions)
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	w, err := safetensors.NewWriter(out, infos, f.Metadata())
	if err == nil {
		for _, b := range data {
			if _, err = w.Write(b); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
