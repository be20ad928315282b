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

// hf-micro staged from its onnx/ folder only (no model.safetensors: the
// onnx-community layout, the decoder mapped from its graph) transcribes to
// the committed @huggingface/transformers reference ids, as the
// safetensors-staged model does.
func TestReferenceTokensONNXLayout(t *testing.T) {
	for _, dec := range []string{"decoder_model_merged.onnx", "decoder_model.onnx"} {
		t.Run(dec, func(t *testing.T) {
			src := t.TempDir()
			if err := os.Mkdir(filepath.Join(src, "onnx"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
				"tokenizer_config.json", "onnx/encoder_model.onnx", "onnx/" + dec} {
				b, err := os.ReadFile(filepath.Join(microDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tr := stagedTranscriber(t, src, t.TempDir())
			checkReference(t, tr, "hf-micro "+dec, filepath.Join(repo, "testdata/transcribe/golden/hf-micro.json"))
		})
	}
}
