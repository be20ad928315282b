package transcribe

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// stagedTranscriber stages the model repository src as a whole model into
// cache and builds a Transcriber from the staged entry alone, as the
// server does: encoder, decoder, tokenizer and generation config.
func stagedTranscriber(t *testing.T, src, cache string) *Transcriber {
	t.Helper()
	res, err := convert.Stage(context.Background(), convert.Options{Source: src, CacheDir: cache, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := staged.Open(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ReadGenerationConfig(m.HFDir(), tk)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := decoder.LoadStaged(m, decoder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dec.Close)
	enc, err := model.Load(res.Dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	tr, err := New(Config{Encoder: ModelEncoder{enc}, Decoder: dec, Tokenizer: tk, Generation: gen, NMels: 80})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// onnxLayoutCopy links the metadata, tokenizer and the given onnx/ files of
// the model directory dir (not model.safetensors) into a new directory: the
// onnx-community layout of the same model.
func onnxLayoutCopy(t *testing.T, dir string, onnxFiles ...string) string {
	t.Helper()
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := []string{"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"}
	for _, f := range onnxFiles {
		files = append(files, "onnx/"+f)
	}
	for _, f := range files {
		abs, err := filepath.Abs(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			if f == "tokenizer_config.json" || f == "preprocessor_config.json" {
				continue // optional
			}
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(src, f)); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// Each reference fixture staged from its onnx/ folder only (no
// model.safetensors: the onnx-community layout, the decoder mapped from
// its graph) transcribes to the committed @huggingface/transformers
// reference ids, as the safetensors-loaded model does: hf-micro from the
// merged and the no-past export, the generated tiny-shaped real-vocabulary
// models (make test-transcribe) from the merged one. hf-base is left out
// (its decoder mapping is convert's TestDecoderFixtures'): it would double
// the slowest model's share of the run.
func TestReferenceTokensONNXLayout(t *testing.T) {
	type layoutRun struct{ name, dir, golden, dec string }
	var runs []layoutRun
	for _, fx := range referenceFixtures() {
		if fx.name == "hf-base" {
			continue
		}
		runs = append(runs, layoutRun{fx.name, fx.dir, fx.golden, "decoder_model_merged.onnx"})
		if fx.name == "hf-micro" {
			runs = append(runs, layoutRun{fx.name, fx.dir, fx.golden, "decoder_model.onnx"})
		}
	}
	for _, r := range runs {
		t.Run(r.name+"/"+r.dec, func(t *testing.T) {
			for _, f := range []string{"encoder_model.onnx", r.dec} {
				if _, err := os.Stat(filepath.Join(r.dir, "onnx", f)); err != nil {
					skipOrFail(t, "generated fixture %s is absent (make test-transcribe generates it): %v", r.dir, err)
				}
			}
			tr := stagedTranscriber(t, onnxLayoutCopy(t, r.dir, "encoder_model.onnx", r.dec), t.TempDir())
			checkReference(t, tr, r.name+" "+r.dec, r.golden)
		})
	}
}
