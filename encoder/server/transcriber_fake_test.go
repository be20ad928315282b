package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"mime/multipart"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// fakeTranscriber is a deterministic test double of transcribe.Service for
// the API's behaviours (formats, errors, streaming, disconnects, drain); the
// real Transcriber is driven by the OpenAI SDK tests in test/openai.
//
// It cuts the audio into 5 s segments; segment i's text names its index, the
// language and the RMS of its samples, so a response can be checked against
// the audio the request carried. Its tokens are [i, round(1000·RMS)].
type fakeTranscriber struct {
	caps transcribe.Capabilities
	// gate, when set, holds each segment after the first until a token
	// arrives (or the context ends).
	gate chan struct{}
	// failAfter > 0 fails the transcription after that many segments.
	failAfter int
	// refuse, when set, is returned by CheckOptions, and refuseLate by
	// Transcribe (as the Transcriber refuses an option it cannot honour).
	refuse, refuseLate error

	running  atomic.Int64 // Transcribe calls in progress
	emitted  chan int     // each segment's index as it is emitted
	mu       sync.Mutex
	options  []transcribe.Options
	checked  []transcribe.Options // of CheckOptions
	canceled int                  // calls that ended by their context
}

func newFakeTranscriber() *fakeTranscriber {
	return &fakeTranscriber{
		caps:    transcribe.Capabilities{Transcribe: true, Translate: true, Languages: []string{"en", "de", "fr"}},
		emitted: make(chan int, 1024),
	}
}

func (f *fakeTranscriber) Capabilities() transcribe.Capabilities { return f.caps }

// DecodeQueueDepth is the Transcribe calls in progress (the fake has no
// decoder queue: every call decodes at once).
func (f *fakeTranscriber) DecodeQueueDepth() int { return int(f.running.Load()) }

// CheckOptions records o in checked and returns refuse.
func (f *fakeTranscriber) CheckOptions(o transcribe.Options) error {
	f.mu.Lock()
	f.checked = append(f.checked, o)
	f.mu.Unlock()
	return f.refuse
}

// fakeSegmentSeconds is the fake's segment length.
const fakeSegmentSeconds = 5

func (f *fakeTranscriber) Transcribe(ctx context.Context, pcm []float32, o transcribe.Options, emit transcribe.Emit) (transcribe.Result, error) {
	f.running.Add(1)
	defer f.running.Add(-1)
	f.mu.Lock()
	f.options = append(f.options, o)
	f.mu.Unlock()
	if f.refuseLate != nil {
		return transcribe.Result{}, f.refuseLate
	}
	res := fakeResult(pcm, o)
	for i, seg := range res.Segments {
		if f.failAfter > 0 && i == f.failAfter {
			return transcribe.Result{}, errors.New("decoder: injected failure")
		}
		if i > 0 && f.gate != nil {
			select {
			case <-f.gate:
			case <-ctx.Done():
				f.mu.Lock()
				f.canceled++
				f.mu.Unlock()
				return transcribe.Result{}, ctx.Err()
			}
		}
		if emit != nil {
			if err := emit(seg); err != nil {
				return transcribe.Result{}, err
			}
		}
		f.emitted <- i
	}
	return res, nil
}

// fakeResult is what fakeTranscriber answers for pcm.
func fakeResult(pcm []float32, o transcribe.Options) transcribe.Result {
	lang := o.Language
	if lang == "" {
		lang = "en"
	}
	const step = fakeSegmentSeconds * transcribe.SampleRate
	res := transcribe.Result{Language: lang, Duration: float64(len(pcm)) / transcribe.SampleRate}
	for i := 0; i*step < len(pcm); i++ {
		chunk := pcm[i*step : min((i+1)*step, len(pcm))]
		var sum float64
		for _, v := range chunk {
			sum += float64(v) * float64(v)
		}
		rms := math.Sqrt(sum / float64(len(chunk)))
		text := fmt.Sprintf(" Segment %d (%s) rms %.2f.", i, lang, rms)
		if o.Task == "translate" {
			text = " [translated]" + text
		}
		start := float64(i * fakeSegmentSeconds)
		end := start + float64(len(chunk))/transcribe.SampleRate
		seg := transcribe.Segment{ID: i, Seek: i * fakeSegmentSeconds * 100, Start: start, End: end, Text: text,
			Tokens: []int{i, int(math.Round(1000 * rms))}, AvgLogProb: -0.25, CompressionRatio: 1.5, NoSpeechProb: 0.01}
		if o.WordTimestamps {
			seg.Words = []transcribe.Word{{Word: " Segment", Start: start, End: start + 1, Probability: 0.9},
				{Word: fmt.Sprintf(" %d", i), Start: start + 1, End: end, Probability: 0.8}}
		}
		res.Segments = append(res.Segments, seg)
		res.Text += text
	}
	return res
}

func (f *fakeTranscriber) lastOptions() transcribe.Options {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.options[len(f.options)-1]
}

// sineWAV is a mono 16-bit WAV of seconds of a 440 Hz sine of amplitude amp.
func sineWAV(seconds float64, rate int, amp float64) []byte {
	n := int(seconds * float64(rate))
	c := audio.Clip{Rate: rate, Channels: 1, Samples: make([]float32, n)}
	for i := range c.Samples {
		c.Samples[i] = float32(amp * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
	}
	return audio.EncodeWAV16(c)
}

// form is a multipart body: fields in order, then the file (nil: none).
func form(t testing.TB, fields [][2]string, file []byte) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil {
		w, err := mw.CreateFormFile("file", "audio.wav")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(file)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}

// postForm sends a multipart body to path.
func (h *harness) postForm(ctx context.Context, path, contentType string, body []byte) httpResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, bytes.NewReader(body))
	if err != nil {
		return httpResult{err: err}
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{err: err}
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b.Bytes(), err: err}
}
