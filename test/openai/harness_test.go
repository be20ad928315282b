// Package openai_test drives the transcription API of `whisper-encoder
// serve` (encoder/server) with the official OpenAI SDKs as clients: the Go
// SDK (github.com/openai/openai-go/v3) in go_sdk_test.go and the npm
// `openai` package through sdk.mjs in node_sdk_test.go. The server runs in
// process on loopback with the real Transcriber over the committed whole-model
// fixture testdata/models/hf-micro (seeded random weights: the text is
// gibberish, so every answer is compared with what the same Transcriber
// gives in process for the same audio and options).
package openai_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

const repo = "../.."

var (
	microDir = filepath.Join(repo, "testdata/models/hf-micro")
	jfkWAV   = filepath.Join(repo, "testdata/mel/jfk_16k.wav")       // 11 s, 16 kHz mono
	jfkFLAC  = filepath.Join(repo, "testdata/audio/jfk_1s_s24.flac") // 1 s, 24-bit FLAC
)

// modelID is the id the test server lists in /v1/models.
const modelID = "whisper-micro-test"

// serving is a server over hf-micro on loopback.
type serving struct {
	base string // http://127.0.0.1:port/v1
	grpc string // 127.0.0.1:port
	s    *server.Server
	tr   *transcribe.Transcriber
}

// model is hf-micro loaded once: the encoder staged from its ONNX export
// (encoder/convert, as `whisper-encoder stage` does), decoder and tokenizer
// from its Hugging Face files.
type micro struct {
	enc  *model.Encoder
	info server.Info
	dec  *decoder.Decoder
	tk   *tokenizer.Tokenizer
	gen  transcribe.GenerationConfig
}

var (
	microOnce sync.Once
	microM    micro
	microErr  error
)

func loadMicro(t testing.TB) micro {
	t.Helper()
	microOnce.Do(func() { microM, microErr = stageMicro() })
	if microErr != nil {
		t.Fatalf("hf-micro: %v", microErr)
	}
	return microM
}

func stageMicro() (micro, error) {
	var m micro
	var err error
	if m.tk, err = tokenizer.LoadHF(os.DirFS(microDir)); err != nil {
		return m, err
	}
	if m.gen, err = transcribe.ReadGenerationConfig(microDir, m.tk); err != nil {
		return m, err
	}
	if m.dec, err = decoder.LoadHF(microDir, decoder.Options{}); err != nil {
		return m, err
	}
	cache, err := os.MkdirTemp("", "openai-sdk-micro-")
	if err != nil {
		return m, err
	}
	defer os.RemoveAll(cache) // model.Load keeps what it needs in memory
	st, err := convert.Stage(context.Background(), convert.Options{
		Source: filepath.Join(microDir, "onnx", "encoder_model.onnx"), CacheDir: cache, NoSync: true})
	if err != nil {
		return m, err
	}
	if m.info, err = server.InfoFor(st.Dir, "cpu"); err != nil {
		return m, err
	}
	m.enc, err = model.Load(st.Dir, model.Options{})
	return m, err
}

// serve runs a server over hf-micro with opts (limits; the Transcriber and
// model id are set here) until the test ends.
func serve(t testing.TB, opts server.Options) *serving {
	t.Helper()
	return serveWith(t, opts, 0)
}

// serveWith is serve with the Transcriber's decode memory (0: its default).
func serveWith(t testing.TB, opts server.Options, decodeMemory int64) *serving {
	t.Helper()
	m := loadMicro(t)
	opts.ModelID = modelID
	opts.ShutdownDelay = 0
	s, err := server.New(server.ModelEncoder(m.enc), m.info, opts)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transcribe.New(transcribe.Config{Encoder: s.WindowEncoder(), Decoder: m.dec, Tokenizer: m.tk,
		Generation: m.gen, NMels: m.info.NMels, Seed: 1, DecodeMemory: decodeMemory})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTranscriber(tr); err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, s, hl, gl, 30*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
		tr.Close()
	})
	for deadline := time.Now().Add(60 * time.Second); !s.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("server not ready after 60 s")
		}
	}
	return &serving{base: "http://" + hl.Addr().String() + "/v1", grpc: gl.Addr().String(), s: s, tr: tr}
}

// reference is what the server's Transcriber gives in process for the file
// at path with o: the answer every SDK response must match.
func (sv *serving) reference(t testing.TB, path string, o transcribe.Options) transcribe.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := audio.Load(b, audio.FormatUnknown, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sv.tr.Transcribe(context.Background(), pcm, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Segments) == 0 {
		t.Fatalf("reference transcription of %s has no segments: the comparison would be empty", path)
	}
	return res
}
