// Command e2e-transcribe is the OpenAI client of the e2e scenario
// "transcribe" (test/e2e/scenarios/transcribe.sh). With the official Go SDK
// (github.com/openai/openai-go/v3) it transcribes an audio file through a
// WhisperEncoder's Service and checks every answer against what the
// Transcriber gives in process over the same staged weights:
//
//	e2e-transcribe -base-url http://10.97.0.12:8080/v1 -weights /cache/KEY -audio jfk.flac
//
// and first writes the scenario's model, testdata/models/hf-micro with its
// text context cut so that greedy decoding passes Whisper's fallback
// thresholds (converttest.ShortContext; the server samples with a random seed
// at temperatures above 0, so only a temperature-0 result can be compared):
//
//	e2e-transcribe fixture -from testdata/models/hf-micro -to DIR -text-context 48
//
// Checks: /v1/models lists a model; response_format json answers 200 with
// the reference's text (non-empty); verbose_json has the reference's
// language, duration and segments (id, seek, start, end, text, tokens,
// temperature, avg_logprob); an empty file is refused with OpenAI's error
// object and 400. It exits 1 naming the first difference, and prints one
// line per check passed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-transcribe:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	baseURL, weights, audio, modelID string
	timeout                          time.Duration
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "fixture" {
		return fixture(args[1:])
	}
	fs := flag.NewFlagSet("e2e-transcribe", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.baseURL, "base-url", "", "the OpenAI API's base URL, e.g. http://SERVICE_IP:8080/v1 (required)")
	fs.StringVar(&c.weights, "weights", "", "the staged weights directory the server serves (required): the in-process reference")
	fs.StringVar(&c.audio, "audio", "", "the audio file to transcribe, WAV or FLAC (required)")
	fs.StringVar(&c.modelID, "model-id", "", "the model id /v1/models must list (default: any)")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.baseURL == "" || c.weights == "" || c.audio == "" || fs.NArg() > 0 {
		return errors.New("want -base-url URL -weights DIR -audio FILE and no arguments (see -h)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	data, err := os.ReadFile(c.audio)
	if err != nil {
		return err
	}
	ref, err := reference(ctx, c.weights, data)
	if err != nil {
		return fmt.Errorf("in-process reference over %s: %w", c.weights, err)
	}
	fmt.Printf("reference (in process): language %s, %.2f s, %d segments, temperatures %v, text %q\n",
		ref.Language, ref.Duration, len(ref.Segments), temperatures(ref), ref.Text)
	if err := greedy(ref); err != nil {
		return err
	}
	cl := openai.NewClient(option.WithBaseURL(c.baseURL), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	name := filepath.Base(c.audio)
	if err := checkModels(ctx, cl, c.modelID); err != nil {
		return err
	}
	for _, check := range []func(context.Context, openai.Client, string, []byte, transcribe.Result) error{
		checkJSON, checkVerbose, checkEmptyFile,
	} {
		if err := check(ctx, cl, name, data, ref); err != nil {
			return err
		}
	}
	return nil
}

// fixture writes the scenario's model (see the package comment).
func fixture(args []string) error {
	fs := flag.NewFlagSet("e2e-transcribe fixture", flag.ContinueOnError)
	from := fs.String("from", "", "a whole model in Hugging Face's layout (required)")
	to := fs.String("to", "", "the directory to write (required)")
	n := fs.Int("text-context", 48, "the text context (max_target_positions) of the written model")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		return errors.New("fixture: want -from DIR -to DIR and no arguments (see -h)")
	}
	return converttest.ShortContext(*from, *to, *n)
}

// reference transcribes audio in process as `whisper-encoder serve` would
// over the staged weights in dir: its encoder, decoder, tokenizer and
// generation config, default options (transcribe, detected language).
func reference(ctx context.Context, dir string, data []byte) (transcribe.Result, error) {
	m, err := staged.Open(dir)
	if err != nil {
		return transcribe.Result{}, err
	}
	defer m.Close()
	if !m.HasDecoder() {
		return transcribe.Result{}, fmt.Errorf("%s holds encoder-only weights: nothing to transcribe with", dir)
	}
	tk, err := m.Tokenizer()
	if err != nil {
		return transcribe.Result{}, err
	}
	gen, err := generation(m, tk)
	if err != nil {
		return transcribe.Result{}, err
	}
	dec, err := decoder.LoadStaged(m, decoder.Options{})
	if err != nil {
		return transcribe.Result{}, err
	}
	defer dec.Close()
	enc, err := model.Load(dir, model.Options{})
	if err != nil {
		return transcribe.Result{}, err
	}
	defer enc.Close()
	tr, err := transcribe.New(transcribe.Config{Encoder: transcribe.ModelEncoder{Encoder: enc}, Decoder: dec,
		Tokenizer: tk, Generation: gen, NMels: m.Config().NumMelBins})
	if err != nil {
		return transcribe.Result{}, err
	}
	defer tr.Close()
	pcm, err := audio.Load(data, audio.FormatUnknown, 0, 0)
	if err != nil {
		return transcribe.Result{}, err
	}
	res, err := tr.Transcribe(ctx, pcm, transcribe.Options{Task: tokenizer.Transcribe}, nil)
	if err == nil && strings.TrimSpace(res.Text) == "" {
		err = errors.New("the reference text is empty: the comparison would prove nothing")
	}
	return res, err
}

// generation is the staged generation config, or the tokenizer's defaults
// when the model has none (as serve does).
func generation(m *staged.Model, tk *tokenizer.Tokenizer) (transcribe.GenerationConfig, error) {
	data, err := m.GenerationConfig()
	if err != nil || len(data) == 0 {
		return transcribe.DefaultGenerationConfig(tk), err
	}
	return transcribe.ParseGenerationConfig(data, tk)
}

func temperatures(r transcribe.Result) []float64 {
	var t []float64
	for _, s := range r.Segments {
		t = append(t, s.Temperature)
	}
	return t
}

// greedy refuses a reference decoded at a temperature above 0: the server
// samples with its own random seed, so equal answers would be chance.
func greedy(ref transcribe.Result) error {
	for _, s := range ref.Segments {
		if s.Temperature != 0 {
			return fmt.Errorf("the reference's segment %d was sampled at temperature %v (fallback): "+
				"the server's answer cannot be compared with it; use a model whose greedy decoding passes the thresholds", s.ID, s.Temperature)
		}
	}
	return nil
}

// checkModels: GET /v1/models lists the model id want (any model if empty).
func checkModels(ctx context.Context, cl openai.Client, want string) error {
	page, err := cl.Models.List(ctx)
	if err != nil {
		return fmt.Errorf("GET /v1/models: %w", describe(err))
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 || want != "" && !slices.Contains(ids, want) {
		return fmt.Errorf("GET /v1/models lists %q, want %q", ids, want)
	}
	fmt.Printf("ok models: %s\n", strings.Join(ids, ", "))
	return nil
}

// checkJSON: response_format json (the SDK's default) answers 200 with the
// reference's text.
func checkJSON(ctx context.Context, cl openai.Client, name string, data []byte, ref transcribe.Result) error {
	var resp *http.Response
	res, err := cl.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(data), name, contentType(name)), Model: openai.AudioModelWhisper1},
		option.WithResponseInto(&resp))
	if err != nil {
		return fmt.Errorf("transcription (json): %w", describe(err))
	}
	want := tokenizer.ValidUTF8(ref.Text)
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("transcription (json): status %d, want 200", resp.StatusCode)
	case res.Text == "":
		return errors.New("transcription (json): empty text")
	case res.Text != want:
		return fmt.Errorf("transcription (json): text %q\nwant (in process) %q", res.Text, want)
	}
	fmt.Printf("ok json: 200, text equal to the in-process Transcriber's (%d bytes)\n", len(res.Text))
	return nil
}

// checkVerbose: response_format verbose_json with segment timestamps has
// the reference's language, duration and segments.
func checkVerbose(ctx context.Context, cl openai.Client, name string, data []byte, ref transcribe.Result) error {
	var resp *http.Response
	res, err := cl.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(data), name, contentType(name)), Model: openai.AudioModelWhisper1,
		ResponseFormat: openai.AudioResponseFormatVerboseJSON, TimestampGranularities: []string{"segment"}},
		option.WithResponseInto(&resp))
	if err != nil {
		return fmt.Errorf("transcription (verbose_json): %w", describe(err))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("transcription (verbose_json): status %d, want 200", resp.StatusCode)
	}
	v := res.AsTranscriptionVerbose()
	lang, _ := tokenizer.LanguageName(ref.Language)
	if v.Text != tokenizer.ValidUTF8(ref.Text) || v.Language != lang || v.Duration != ref.Duration || len(v.Segments) != len(ref.Segments) {
		return fmt.Errorf("verbose_json: text %q, language %q, duration %v, %d segments\nwant (in process) %q, %q, %v, %d segments",
			v.Text, v.Language, v.Duration, len(v.Segments), ref.Text, lang, ref.Duration, len(ref.Segments))
	}
	for i, s := range v.Segments {
		if err := sameSegment(s, ref.Segments[i]); err != nil {
			return fmt.Errorf("verbose_json segment %d: %w", i, err)
		}
	}
	fmt.Printf("ok verbose_json: 200, language %s, %.2f s, %d segments equal to the in-process Transcriber's\n",
		v.Language, v.Duration, len(v.Segments))
	return nil
}

// sameSegment compares one verbose_json segment with the reference's.
func sameSegment(s openai.TranscriptionSegment, r transcribe.Segment) error {
	if s.ID != int64(r.ID) || s.Seek != int64(r.Seek) || s.Start != r.Start || s.End != r.End ||
		s.Text != tokenizer.ValidUTF8(r.Text) || s.Temperature != r.Temperature || s.AvgLogprob != r.AvgLogProb ||
		len(s.Tokens) != len(r.Tokens) {
		return fmt.Errorf("id %d seek %d [%v, %v] %q temperature %v avg_logprob %v, %d tokens\nwant (in process) id %d seek %d [%v, %v] %q temperature %v avg_logprob %v, %d tokens",
			s.ID, s.Seek, s.Start, s.End, s.Text, s.Temperature, s.AvgLogprob, len(s.Tokens),
			r.ID, r.Seek, r.Start, r.End, r.Text, r.Temperature, r.AvgLogProb, len(r.Tokens))
	}
	if s.Start > s.End {
		return fmt.Errorf("starts at %v after its end %v", s.Start, s.End)
	}
	for j, tok := range s.Tokens {
		if tok != int64(r.Tokens[j]) {
			return fmt.Errorf("token %d is %d, want %d", j, tok, r.Tokens[j])
		}
	}
	return nil
}

// checkEmptyFile: an empty file is refused with OpenAI's error object
// (invalid_request_error about param "file") and status 400.
func checkEmptyFile(ctx context.Context, cl openai.Client, name string, _ []byte, _ transcribe.Result) error {
	_, err := cl.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(nil), name, contentType(name)), Model: openai.AudioModelWhisper1})
	var e *openai.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("empty file: got %v, want an OpenAI error object (*openai.Error)", err)
	}
	if e.StatusCode != http.StatusBadRequest || e.Type != "invalid_request_error" || e.Param != "file" || e.Message == "" {
		return fmt.Errorf("empty file: status %d, type %q, param %q, message %q; want 400, invalid_request_error, file, a message",
			e.StatusCode, e.Type, e.Param, e.Message)
	}
	fmt.Printf("ok empty file: 400 %s (param %s): %s\n", e.Type, e.Param, e.Message)
	return nil
}

// contentType is the file part's media type, from name's extension.
func contentType(name string) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// describe adds an API error's status and body to err (the SDK's message
// has only the status).
func describe(err error) error {
	var e *openai.Error
	if errors.As(err, &e) {
		return fmt.Errorf("%w: %s", err, e.RawJSON())
	}
	return err
}
