package transcribe

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

const repo = "../.."

var microDir = filepath.Join(repo, "testdata/models/hf-micro")

// fixture is a whole model loaded for tests: the staged encoder, the
// decoder, the tokenizer and the generation config of a Hugging Face dir.
type fixture struct {
	enc *model.Encoder
	dec *decoder.Decoder
	tk  *tokenizer.Tokenizer
	gen GenerationConfig
}

var (
	microOnce sync.Once
	micro     fixture
	microErr  error
)

// loadFixture stages dir/onnx/encoder_model.onnx with encoder/convert into
// cache, loads it with model.Load, and loads the rest of dir.
func loadFixture(dir, cache string) (fixture, error) {
	var f fixture
	var err error
	if f.tk, err = tokenizer.LoadHF(os.DirFS(dir)); err != nil {
		return f, err
	}
	if f.gen, err = ReadGenerationConfig(dir, f.tk); err != nil {
		return f, err
	}
	// XDNA_TRANSCRIBE_ACTIVATIONS (auto, bf16, fp32) picks the GEMM
	// activation precision of encoder and decoder, e.g. to look at a tie.
	act := os.Getenv("XDNA_TRANSCRIBE_ACTIVATIONS")
	if f.dec, err = decoder.LoadHF(dir, decoder.Options{Activations: act}); err != nil {
		return f, err
	}
	st, err := convert.Stage(context.Background(), convert.Options{
		Source: filepath.Join(dir, "onnx", "encoder_model.onnx"), CacheDir: cache, NoSync: true})
	if err != nil {
		return f, err
	}
	f.enc, err = model.Load(st.Dir, model.Options{Activations: act})
	return f, err
}

// microFixture is hf-micro, loaded once for the package's tests.
func microFixture(t testing.TB) fixture {
	t.Helper()
	microOnce.Do(func() {
		cache, err := os.MkdirTemp("", "transcribe-micro-")
		if err != nil {
			microErr = err
			return
		}
		micro, microErr = loadFixture(microDir, cache)
		os.RemoveAll(cache)
	})
	if microErr != nil {
		t.Fatalf("hf-micro: %v", microErr)
	}
	return micro
}

// newMicro returns a Transcriber over hf-micro.
func newMicro(t testing.TB, maxBatch int) *Transcriber {
	t.Helper()
	f := microFixture(t)
	tr, err := New(Config{Encoder: ModelEncoder{f.enc}, Decoder: f.dec, Tokenizer: f.tk, Generation: f.gen,
		NMels: 80, MaxBatch: maxBatch, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// jfk returns the jfk clip at 16 kHz (testdata/mel/jfk_16k.wav).
func jfk(t testing.TB) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "testdata/mel/jfk_16k.wav"))
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := audio.Load(b, audio.FormatUnknown, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// noise is seeded uniform noise in [-a, a).
func noise(n int, a float32, seed uint32) []float32 {
	x := make([]float32, n)
	s := seed
	for i := range x {
		s = s*1664525 + 1013904223
		x[i] = a * (float32(s>>8)/float32(1<<24)*2 - 1)
	}
	return x
}

// encodeCross encodes r's window at seek and computes its cross K/V.
func encodeCross(ctx context.Context, r *run, seek int) (*decoder.Cross, error) {
	hidden, positions, err := r.encode(ctx, seek)
	if err != nil {
		return nil, err
	}
	return r.t.cfg.Decoder.NewCross(ctx, hidden, positions)
}
