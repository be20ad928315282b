package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// startTranscriber runs a server with the fake transcriber (or none).
func startTranscriber(t *testing.T, tr transcribe.Service, opts Options) *harness {
	t.Helper()
	opts.Transcriber = tr
	if opts.ModelID == "" {
		opts.ModelID = "whisper-fake"
	}
	h := start(t, newGated(fakeInfo(), false), fakeInfo(), opts)
	h.waitReady(t)
	return h
}

// errorBody is an OpenAI error object as a client decodes it.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeError(t *testing.T, r httpResult) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("status %d: body is not an OpenAI error object (%v): %s", r.status, err, trim(r.body))
	}
	return e
}

// TestTranscriptionFormats: every response_format answers the fake's
// transcription of the uploaded audio (11 s of a sine resampled from 22.05
// kHz: three segments, RMS 0.35), in OpenAI's shape.
func TestTranscriptionFormats(t *testing.T) {
	h := startTranscriber(t, newFakeTranscriber(), DefaultOptions())
	wav := sineWAV(11, 22050, 0.5)
	text := " Segment 0 (en) rms 0.35. Segment 1 (en) rms 0.35. Segment 2 (en) rms 0.35."
	for _, tc := range []struct {
		format, contentType, want string
		fields                    [][2]string
	}{
		{"json", "application/json", `{"text":"` + text + `","usage":{"type":"duration","seconds":11}}` + "\n", nil},
		{"text", "text/plain; charset=utf-8", text + "\n", nil},
		{"srt", "text/plain; charset=utf-8", "1\n00:00:00,000 --> 00:00:05,000\nSegment 0 (en) rms 0.35.\n\n" +
			"2\n00:00:05,000 --> 00:00:10,000\nSegment 1 (en) rms 0.35.\n\n3\n00:00:10,000 --> 00:00:11,000\nSegment 2 (en) rms 0.35.\n\n", nil},
		{"vtt", "text/vtt; charset=utf-8", "WEBVTT\n\n00:00:00.000 --> 00:00:05.000\nSegment 0 (en) rms 0.35.\n\n" +
			"00:00:05.000 --> 00:00:10.000\nSegment 1 (en) rms 0.35.\n\n00:00:10.000 --> 00:00:11.000\nSegment 2 (en) rms 0.35.\n\n", nil},
	} {
		t.Run(tc.format, func(t *testing.T) {
			body, ct := form(t, append([][2]string{{"model", "whisper-1"}, {"response_format", tc.format}}, tc.fields...), wav)
			r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body)
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("status %d, err %v: %s", r.status, r.err, trim(r.body))
			}
			if got := r.header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if string(r.body) != tc.want {
				t.Errorf("body:\n%q\nwant\n%q", r.body, tc.want)
			}
		})
	}
	if got := h.routeCount("transcriptions", "200"); got != 4 {
		t.Errorf("http_requests_total{route=transcriptions,status=200} = %v, want 4", got)
	}
	if got := testutil.ToFloat64(h.s.metrics.tokens); got != 4*6 {
		t.Errorf("decoded_tokens_total = %v, want 24 (4 requests × 3 segments × 2 tokens)", got)
	}
}

func (h *harness) routeCount(route, status string) float64 {
	return testutil.ToFloat64(h.s.metrics.routes.WithLabelValues(route, status))
}

// TestTranscriptionVerboseJSON: verbose_json lists segments and/or words as
// timestamp_granularities[] asks, the language by name, and passes the
// form's options to the Transcriber.
func TestTranscriptionVerboseJSON(t *testing.T) {
	fake := newFakeTranscriber()
	h := startTranscriber(t, fake, DefaultOptions())
	wav := sineWAV(7, 16000, 0.5)
	for _, tc := range []struct {
		name                string
		granularities       []string
		segments, wantWords int
	}{
		{"default", nil, 2, 0},
		{"segment", []string{"segment"}, 2, 0},
		{"word", []string{"word"}, 0, 4},
		{"both", []string{"segment", "word"}, 2, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := [][2]string{{"model", "whisper-fake"}, {"response_format", "verbose_json"}, {"language", "German"},
				{"prompt", "Glossar: Kühlschrank"}, {"temperature", "0.4"}}
			for _, g := range tc.granularities {
				fields = append(fields, [2]string{"timestamp_granularities[]", g})
			}
			body, ct := form(t, fields, wav)
			r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, trim(r.body))
			}
			var v struct {
				Task, Language, Text string
				Duration             float64
				Segments             []map[string]any
				Words                []transcribe.Word
				Usage                durationUsage
			}
			if err := json.Unmarshal(r.body, &v); err != nil {
				t.Fatal(err)
			}
			if v.Task != "transcribe" || v.Language != "german" || v.Duration != 7 || v.Usage != (durationUsage{"duration", 7}) ||
				v.Text != " Segment 0 (de) rms 0.35. Segment 1 (de) rms 0.35." {
				t.Errorf("got task %q language %q duration %v usage %+v text %q", v.Task, v.Language, v.Duration, v.Usage, v.Text)
			}
			if len(v.Segments) != tc.segments || len(v.Words) != tc.wantWords {
				t.Fatalf("%d segments, %d words; want %d, %d", len(v.Segments), len(v.Words), tc.segments, tc.wantWords)
			}
			if tc.segments > 0 {
				s := v.Segments[1]
				for k, want := range map[string]any{"id": 1.0, "seek": 500.0, "start": 5.0, "end": 7.0, "text": " Segment 1 (de) rms 0.35.",
					"avg_logprob": -0.25, "compression_ratio": 1.5, "no_speech_prob": 0.01, "temperature": 0.0} {
					if s[k] != want {
						t.Errorf("segment 1 %s = %v, want %v", k, s[k], want)
					}
				}
			}
			if tc.wantWords > 0 && v.Words[3] != (transcribe.Word{Word: " 1", Start: 6, End: 7, Probability: 0.8}) {
				t.Errorf("word 3 = %+v", v.Words[3])
			}
			o := fake.lastOptions()
			if o.Language != "de" || o.Prompt != "Glossar: Kühlschrank" || len(o.Temperatures) != 1 || o.Temperatures[0] != 0.4 ||
				o.WordTimestamps != (tc.wantWords > 0) || o.Task != "transcribe" {
				t.Errorf("options %+v", o)
			}
		})
	}
}

// TestTranslation: /v1/audio/translations asks the Transcriber to translate.
func TestTranslation(t *testing.T) {
	fake := newFakeTranscriber()
	h := startTranscriber(t, fake, DefaultOptions())
	body, ct := form(t, [][2]string{{"model", "whisper-fake"}, {"response_format", "text"}}, sineWAV(2, 16000, 0.5))
	r := h.postForm(context.Background(), "/v1/audio/translations", ct, body)
	if r.status != http.StatusOK || string(r.body) != " [translated] Segment 0 (en) rms 0.35.\n" {
		t.Fatalf("status %d: %q", r.status, r.body)
	}
	if o := fake.lastOptions(); o.Task != "translate" {
		t.Errorf("task %q, want translate", o.Task)
	}
}

// TestTranscriptionErrors: bad input gets a 4xx OpenAI error object naming
// the parameter at fault, and the Transcriber is never called.
func TestTranscriptionErrors(t *testing.T) {
	fake := newFakeTranscriber()
	fake.caps = transcribe.Capabilities{Transcribe: true, Languages: []string{"en"}} // an English-only model
	opts := DefaultOptions()
	opts.MaxRequestBytes = 1 << 20
	opts.MaxAudioSeconds = 20
	h := startTranscriber(t, fake, opts)
	wav := sineWAV(1, 16000, 0.5)
	ok := [][2]string{{"model", "whisper-1"}}
	type req struct {
		path, contentType string
		body              []byte
	}
	mk := func(fields [][2]string, file []byte) req {
		b, ct := form(t, fields, file)
		return req{"/v1/audio/transcriptions", ct, b}
	}
	good := mk(ok, wav)
	for _, tc := range []struct {
		name   string
		req    req
		status int
		param  string // "" : null
		msg    string // a fragment of the message
	}{
		{"bad response_format", mk([][2]string{{"model", "whisper-1"}, {"response_format", "mp3"}}, wav), 400, "response_format", `response_format "mp3": want json, text, srt, vtt or verbose_json`},
		{"missing model", mk(nil, wav), 400, "model", "you must provide a model parameter"},
		{"unknown model", mk([][2]string{{"model", "gpt-4o-transcribe"}}, wav), 400, "model", `"gpt-4o-transcribe" is not served here: want one of "whisper-fake", "fake", "whisper-1"`},
		{"missing file", mk(ok, nil), 400, "file", "you must provide a file"},
		{"empty file", mk(ok, []byte{}), 400, "file", "the uploaded file is empty"},
		{"not audio", mk(ok, []byte("this is a text file, not audio at all")), 400, "file", "this server reads WAV and FLAC"},
		{"truncated wav", mk(ok, wav[:30]), 400, "file", "file:"},
		{"bad temperature", mk([][2]string{{"model", "whisper-1"}, {"temperature", "hot"}}, wav), 400, "temperature", `temperature "hot": want a number from 0 to 1`},
		{"bad granularity", mk([][2]string{{"model", "whisper-1"}, {"response_format", "verbose_json"}, {"timestamp_granularities[]", "char"}}, wav), 400, "timestamp_granularities", "want segment or word"},
		{"granularity without verbose_json", mk([][2]string{{"model", "whisper-1"}, {"timestamp_granularities[]", "word"}}, wav), 400, "timestamp_granularities", "needs response_format verbose_json"},
		{"stream srt", mk([][2]string{{"model", "whisper-1"}, {"stream", "true"}, {"response_format", "srt"}}, wav), 400, "response_format", "cannot be streamed"},
		{"bad stream", mk([][2]string{{"model", "whisper-1"}, {"stream", "maybe"}}, wav), 400, "stream", `stream "maybe"`},
		{"unknown language", mk([][2]string{{"model", "whisper-1"}, {"language", "klingon"}}, wav), 400, "language", `unsupported language "klingon"`},
		{"language the model lacks", mk([][2]string{{"model", "whisper-1"}, {"language", "de"}}, wav), 400, "language", `model whisper-fake knows "en"`},
		{"translate on english-only", req{"/v1/audio/translations", good.contentType, good.body}, 400, "model", "model whisper-fake cannot translate: it can encode, transcribe (an English-only model cannot translate)"},
		{"not multipart", req{"/v1/audio/transcriptions", "audio/wav", wav}, 415, "", "want multipart/form-data"},
		{"corrupt multipart", req{"/v1/audio/transcriptions", good.contentType, good.body[:len(good.body)/2]}, 400, "", "multipart body is malformed"},
		{"body too large", mk(ok, make([]byte, 2<<20)), 413, "", "over the limit of 1048576 bytes"},
		{"audio too long", mk(ok, sineWAV(25, 8000, 0.5)), 413, "file", "audio is 25.0 s long, over the limit of 20 s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.postForm(context.Background(), tc.req.path, tc.req.contentType, tc.req.body)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, trim(r.body))
			}
			e := decodeError(t, r)
			if !strings.Contains(e.Error.Message, tc.msg) {
				t.Errorf("message %q, want it to contain %q", e.Error.Message, tc.msg)
			}
			param := ""
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			if param != tc.param {
				t.Errorf("param %q, want %q", param, tc.param)
			}
			if e.Error.Type != "invalid_request_error" {
				t.Errorf("type %q, want invalid_request_error", e.Error.Type)
			}
		})
	}
	fake.mu.Lock()
	calls := len(fake.options)
	fake.mu.Unlock()
	if calls != 0 {
		t.Errorf("the Transcriber was called %d times for bad requests", calls)
	}
	if r := h.postForm(context.Background(), "/v1/audio/transcriptions", good.contentType, good.body); r.status != http.StatusOK {
		t.Errorf("good request after the bad ones: status %d: %s", r.status, trim(r.body))
	}
	if got := h.s.uploads.used.Load(); got != 0 {
		t.Errorf("upload budget holds %d bytes after every request ended", got)
	}
	if got := h.s.decoding.used.Load(); got != 0 {
		t.Errorf("decode budget holds %d bytes after every request ended", got)
	}
}

// TestEncodeOnlyModel: without a Transcriber the transcription routes answer
// 400 naming what the model can do, and /v1/models says so too.
func TestEncodeOnlyModel(t *testing.T) {
	h := startTranscriber(t, nil, DefaultOptions())
	body, ct := form(t, [][2]string{{"model", "whisper-1"}}, sineWAV(1, 16000, 0.5))
	for _, path := range []string{"/v1/audio/transcriptions", "/v1/audio/translations"} {
		r := h.postForm(context.Background(), path, ct, body)
		if r.status != http.StatusBadRequest {
			t.Fatalf("%s: status %d: %s", path, r.status, trim(r.body))
		}
		e := decodeError(t, r)
		if !strings.Contains(e.Error.Message, "it can encode (it has no decoder: it serves encoder hidden states at /v1/encode)") ||
			e.Error.Code == nil || *e.Error.Code != "unsupported_task" {
			t.Errorf("%s: %+v", path, e.Error)
		}
	}
	resp, err := http.Get(h.base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string
		Data   []modelObject
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "whisper-fake" || list.Data[0].Object != "model" ||
		list.Data[0].Capabilities.Transcribe || !list.Data[0].Capabilities.Encode {
		t.Errorf("/v1/models: %+v", list)
	}
}

// TestModels: /v1/models lists the served id with its capabilities;
// /v1/models/{id} answers it and its aliases, and 404 otherwise.
func TestModels(t *testing.T) {
	h := startTranscriber(t, newFakeTranscriber(), DefaultOptions())
	for id, want := range map[string]int{"whisper-fake": 200, "whisper-1": 200, "fake": 200, "whisper-large": 404} {
		resp, err := http.Get(h.base + "/v1/models/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var m modelObject
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && (m.ID != id || !m.Capabilities.Translate) {
			t.Errorf("%s: status %d, %+v", id, resp.StatusCode, m)
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	event string
	data  map[string]any
}

// readEvents parses server-sent events from r onto a channel, closed at EOF.
func readEvents(t *testing.T, r io.Reader) <-chan sseEvent {
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != nil {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
					t.Errorf("event data %q: %v", line, err)
				}
			}
		}
	}()
	return out
}

// next waits for the next event (bounded: 30 s).
func next(t *testing.T, events <-chan sseEvent) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-events:
		return ev, ok
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	return sseEvent{}, false
}

// streamRequest starts a stream=true request and returns its response.
func (h *harness) streamRequest(t *testing.T, ctx context.Context, path string, wav []byte) *http.Response {
	t.Helper()
	body, ct := form(t, [][2]string{{"model", "whisper-1"}, {"stream", "true"}}, wav)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), trim(b))
	}
	return resp
}

// TestTranscriptionStream: stream=true sends one transcript.text.delta per
// segment as it is decided (the first arrives while the Transcriber still
// holds the second), then transcript.text.done with the whole text.
func TestTranscriptionStream(t *testing.T) {
	fake := newFakeTranscriber()
	fake.gate = make(chan struct{})
	h := startTranscriber(t, fake, DefaultOptions())
	resp := h.streamRequest(t, context.Background(), "/v1/audio/transcriptions", sineWAV(12, 16000, 0.5))
	events := readEvents(t, resp.Body)
	var deltas string
	for i := range 3 {
		ev, _ := next(t, events)
		if ev.event != "" || ev.data["type"] != "transcript.text.delta" {
			t.Fatalf("event %d: %+v", i, ev)
		}
		deltas += ev.data["delta"].(string)
		if i < 2 {
			fake.gate <- struct{}{} // decide the next segment only now
		}
	}
	ev, _ := next(t, events)
	want := " Segment 0 (en) rms 0.35. Segment 1 (en) rms 0.35. Segment 2 (en) rms 0.35."
	if ev.data["type"] != "transcript.text.done" || ev.data["text"] != want || deltas != want {
		t.Errorf("done %+v, deltas %q, want %q", ev, deltas, want)
	}
	if ev, ok := next(t, events); ok {
		t.Errorf("event after done: %+v", ev)
	}
}

// TestTranscriptionStreamFailure: a Transcriber failure after the stream
// began ends it with an error event in OpenAI's error shape.
func TestTranscriptionStreamFailure(t *testing.T) {
	fake := newFakeTranscriber()
	fake.failAfter = 1
	h := startTranscriber(t, fake, DefaultOptions())
	resp := h.streamRequest(t, context.Background(), "/v1/audio/transcriptions", sineWAV(12, 16000, 0.5))
	events := readEvents(t, resp.Body)
	if ev, _ := next(t, events); ev.data["type"] != "transcript.text.delta" {
		t.Fatalf("first event %+v", ev)
	}
	ev, _ := next(t, events)
	e, _ := ev.data["error"].(map[string]any)
	if ev.event != "error" || e == nil || e["type"] != "server_error" || !strings.Contains(e["message"].(string), "injected failure") {
		t.Errorf("error event %+v", ev)
	}
}

// TestTranscriptionDisconnect: a client that goes away mid-stream cancels
// its transcription (the Transcriber's context ends, its slot is freed) and
// the next request is served.
func TestTranscriptionDisconnect(t *testing.T) {
	fake := newFakeTranscriber()
	fake.gate = make(chan struct{})
	opts := DefaultOptions()
	opts.MaxTranscriptions = 1
	h := startTranscriber(t, fake, opts)
	ctx, cancel := context.WithCancel(context.Background())
	resp := h.streamRequest(t, ctx, "/v1/audio/transcriptions", sineWAV(12, 16000, 0.5))
	events := readEvents(t, resp.Body)
	if ev, _ := next(t, events); ev.data["type"] != "transcript.text.delta" {
		t.Fatalf("first event %+v", ev)
	}
	// While it runs, the one slot is taken: a second request gets 429.
	body, ct := form(t, [][2]string{{"model", "whisper-1"}}, sineWAV(1, 16000, 0.5))
	if r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body); r.status != http.StatusTooManyRequests ||
		r.header.Get("Retry-After") != "1" || decodeError(t, r).Error.Type != "rate_limit_error" {
		t.Fatalf("second request: status %d, Retry-After %q: %s", r.status, r.header.Get("Retry-After"), trim(r.body))
	}
	cancel()
	waitFor(t, "the Transcriber to see its context end", func() bool {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return fake.canceled == 1 && fake.running.Load() == 0
	})
	waitFor(t, "the slot to be freed", func() bool { return testutil.ToFloat64(h.s.metrics.transcriptions) == 0 })
	fake.gate = nil
	if r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body); r.status != http.StatusOK {
		t.Fatalf("after the disconnect: status %d: %s", r.status, trim(r.body))
	}
}

// TestLongTranscriptionOutlivesTimeouts: a transcription that runs longer
// than ReadTimeout and WriteTimeout (between two events) is neither
// cancelled nor cut: the timeouts bound receiving the body and sending each
// event, not the decoding.
func TestLongTranscriptionOutlivesTimeouts(t *testing.T) {
	fake := newFakeTranscriber()
	fake.gate = make(chan struct{})
	opts := DefaultOptions()
	opts.ReadTimeout = 200 * time.Millisecond
	opts.WriteTimeout = 200 * time.Millisecond
	h := startTranscriber(t, fake, opts)
	resp := h.streamRequest(t, context.Background(), "/v1/audio/transcriptions", sineWAV(7, 16000, 0.5))
	sent := time.Now()
	events := readEvents(t, resp.Body)
	if ev, _ := next(t, events); ev.data["type"] != "transcript.text.delta" {
		t.Fatalf("first event %+v", ev)
	}
	// Hold the second segment until both timeouts have passed three times over.
	for time.Since(sent) < 3*opts.ReadTimeout {
		time.Sleep(10 * time.Millisecond)
	}
	fake.gate <- struct{}{}
	if ev, _ := next(t, events); ev.data["type"] != "transcript.text.delta" {
		t.Fatalf("second event %+v", ev)
	}
	if ev, _ := next(t, events); ev.data["type"] != "transcript.text.done" {
		t.Fatalf("last event %+v", ev)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.canceled != 0 {
		t.Errorf("the transcription was cancelled")
	}
}

// TestMaxTranscriptionsDefault: options built field by field (as serve's
// flags do) without MaxTranscriptions get the default; a negative one is
// refused.
func TestMaxTranscriptionsDefault(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxTranscriptions = 0
	s, err := New(newGated(fakeInfo(), false), fakeInfo(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cap(s.transcribing) != DefaultMaxTranscriptions {
		t.Errorf("%d transcription slots, want %d", cap(s.transcribing), DefaultMaxTranscriptions)
	}
	opts.MaxTranscriptions = -1
	if _, err := New(newGated(fakeInfo(), false), fakeInfo(), opts); err == nil || !strings.Contains(err.Error(), "max transcriptions -1") {
		t.Errorf("New with -1 transcriptions: %v", err)
	}
}

// TestTranscriptionDecodeBudget: audio whose decoding could never fit the
// decode budget is refused with 413 from its header, before a sample is
// decoded; audio that fits is served and gives its share back.
func TestTranscriptionDecodeBudget(t *testing.T) {
	opts := DefaultOptions()
	opts.DecodeBudget = 1500 << 10
	h := startTranscriber(t, newFakeTranscriber(), opts)
	body, ct := form(t, [][2]string{{"model", "whisper-1"}}, sineWAV(20, 16000, 0.5))
	r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(decodeError(t, r).Error.Message, "over the decode budget of 1536000 bytes") {
		t.Fatalf("status %d: %s", r.status, trim(r.body))
	}
	body, ct = form(t, [][2]string{{"model", "whisper-1"}}, sineWAV(1, 16000, 0.5))
	if r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, trim(r.body))
	}
	if n := h.s.decoding.used.Load(); n != 0 {
		t.Errorf("decode budget holds %d bytes after the requests", n)
	}
}

// TestTranscriptionWhileDraining: once draining, transcriptions are refused
// with 503, Retry-After and an OpenAI server_error before the body is read.
func TestTranscriptionWhileDraining(t *testing.T) {
	fake := newFakeTranscriber()
	h := startTranscriber(t, fake, DefaultOptions())
	h.s.Drain()
	body, ct := form(t, [][2]string{{"model", "whisper-1"}}, sineWAV(1, 16000, 0.5))
	r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
		t.Fatalf("status %d, Retry-After %q: %s", r.status, r.header.Get("Retry-After"), trim(r.body))
	}
	if e := decodeError(t, r).Error; e.Type != "server_error" || e.Code == nil || *e.Code != "service_unavailable" || !strings.Contains(e.Message, "shutting down") {
		t.Errorf("error %+v", e)
	}
	if fake.running.Load() != 0 || len(fake.options) != 0 {
		t.Errorf("the Transcriber was called while draining")
	}
}

// TestFormatsValidUTF8: a text that ends inside a character (random or
// truncated decodes do) is answered as valid UTF-8 in every format, with
// U+FFFD for the broken sequence.
func TestFormatsValidUTF8(t *testing.T) {
	res := transcribe.Result{Text: " caf\xc3 \xe2\x82", Language: "fr", Duration: 1,
		Segments: []transcribe.Segment{{Text: " caf\xc3 \xe2\x82", End: 1, Words: []transcribe.Word{{Word: " \xe2\x82", End: 1}}}}}
	for format, want := range map[string]string{
		FormatText:        " caf\uFFFD \uFFFD\n",
		FormatSRT:         "1\n00:00:00,000 --> 00:00:01,000\ncaf\uFFFD \uFFFD\n\n",
		FormatJSON:        `{"text":" caf` + "\uFFFD \uFFFD" + `","usage":{"type":"duration","seconds":1}}` + "\n",
		FormatVerboseJSON: `"words":[{"word":" ` + "\uFFFD" + `","start":0,"end":1,"probability":0}]`,
	} {
		var b strings.Builder
		if err := writeTranscription(&b, format, "transcribe", res, map[string]bool{"word": true}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%s: %q, want %q", format, b.String(), want)
		}
	}
}

// TestTranscriptionChunkedBody: a multipart body without Content-Length
// (streamed by the client) is read within the upload budget as it grows,
// even when the budget holds just one body of MaxRequestBytes, and a body
// over MaxRequestBytes is refused with 413 — chunked or with a
// Content-Length, just over the limit or far over it — never with 429.
func TestTranscriptionChunkedBody(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxRequestBytes = 3 << 20
	opts.UploadBudget = opts.MaxRequestBytes // the least New accepts: one body
	h := startTranscriber(t, newFakeTranscriber(), opts)
	limit := int(opts.MaxRequestBytes)
	for _, tc := range []struct {
		name   string
		size   int // of the multipart body
		status int
	}{
		{"small", 1 << 20, http.StatusOK},
		{"just under the limit", limit - 1000, http.StatusOK},
		{"at the limit", limit, http.StatusOK},
		{"one byte over", limit + 1, http.StatusRequestEntityTooLarge},
		{"just over", limit + 1000, http.StatusRequestEntityTooLarge},
		{"far over", 2 * limit, http.StatusRequestEntityTooLarge},
	} {
		body, ct := formOfSize(t, tc.size)
		for _, chunked := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s chunked=%v", tc.name, chunked), func(t *testing.T) {
				status, b := postBody(t, h.base+"/v1/audio/transcriptions", ct, body, chunked)
				if status != tc.status {
					t.Fatalf("%d-byte body: status %d, want %d: %s", len(body), status, tc.status, trim(b))
				}
				if tc.status == http.StatusOK && !strings.HasPrefix(string(b), " Segment 0 (en) rms 0.35.") {
					t.Errorf("%q", trim(b))
				}
				if tc.status == http.StatusRequestEntityTooLarge {
					if e := decodeErrorBody(t, status, b); !strings.Contains(e.Error.Message, "over the limit of 3145728 bytes") {
						t.Errorf("message %q", e.Error.Message)
					}
				}
				waitFor(t, "the upload budget to be free", func() bool { return h.s.uploads.used.Load() == 0 })
			})
		}
	}
}

// TestEncodeChunkedBodyOverLimit: /v1/encode reads raw bodies the same way:
// a chunked body over the limit is 413 with a budget of one body.
func TestEncodeChunkedBodyOverLimit(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxRequestBytes = 2 << 20
	opts.UploadBudget = opts.MaxRequestBytes
	h := start(t, newGated(fakeInfo(), false), fakeInfo(), opts)
	h.waitReady(t)
	for _, size := range []int{int(opts.MaxRequestBytes) + 1, int(opts.MaxRequestBytes) + 4096} {
		for _, chunked := range []bool{true, false} {
			status, b := postBody(t, h.base+"/v1/encode", "application/octet-stream", make([]byte, size), chunked)
			if status != http.StatusRequestEntityTooLarge {
				t.Errorf("%d bytes, chunked=%v: status %d, want 413: %s", size, chunked, status, trim(b))
			}
		}
	}
	waitFor(t, "the upload budget to be free", func() bool { return h.s.uploads.used.Load() == 0 })
}

// formOfSize is a transcription form of exactly size bytes: a 16 kHz sine
// as long as fits (at most 2 minutes), padded with a prompt field.
func formOfSize(t *testing.T, size int) ([]byte, string) {
	t.Helper()
	fields := [][2]string{{"model", "whisper-1"}, {"response_format", "text"}}
	empty, _ := form(t, append(fields, [2]string{"prompt", ""}), []byte{})
	samples := min((size-len(empty)-44-maxFormField/2)/2, 120*16000)
	wav := sineWAV(float64(samples)/16000, 16000, 0.5)
	probe, _ := form(t, append(fields, [2]string{"prompt", ""}), wav)
	if pad := size - len(probe); pad > maxFormField { // far over: trailing bytes after the audio
		wav = append(wav, make([]byte, pad-1000)...)
		probe, _ = form(t, append(fields, [2]string{"prompt", ""}), wav)
	}
	body, ct := form(t, append(fields, [2]string{"prompt", strings.Repeat("a", size-len(probe))}), wav)
	if len(body) != size {
		t.Fatalf("form of %d bytes, want %d", len(body), size)
	}
	return body, ct
}

// postBody posts body, with a Content-Length or chunked, and returns the
// status and the response body.
func postBody(t *testing.T, url, contentType string, body []byte, chunked bool) (int, []byte) {
	t.Helper()
	var src io.Reader = bytes.NewReader(body)
	if chunked { // a pipe's length is unknown: sent chunked
		pr, pw := io.Pipe()
		go func() {
			for b := body; len(b) > 0; b = b[min(len(b), 64<<10):] {
				if _, err := pw.Write(b[:min(len(b), 64<<10)]); err != nil {
					return
				}
			}
			pw.Close()
		}()
		defer pr.Close()
		src = pr
	}
	req, err := http.NewRequest(http.MethodPost, url, src)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if chunked != (req.ContentLength <= 0) {
		t.Fatalf("request Content-Length %d, chunked=%v", req.ContentLength, chunked)
	}
	return resp.StatusCode, b
}

func decodeErrorBody(t *testing.T, status int, b []byte) errorBody {
	t.Helper()
	return decodeError(t, httpResult{status: status, body: b})
}

// scrape reads one unlabelled sample of /metrics (false: not exported).
func (h *harness) scrape(t *testing.T, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestDecodeQueueDepthMetric: /metrics exports the Transcriber's decode
// queue depth under the name the operator's autoscaler reads: it rises with
// the transcriptions held in the Transcriber and returns to 0.
func TestDecodeQueueDepthMetric(t *testing.T) {
	if DecodeQueueDepthMetric != "whisper_encoder_decode_queue_depth" {
		t.Fatalf("DecodeQueueDepthMetric %q", DecodeQueueDepthMetric)
	}
	fake := newFakeTranscriber()
	fake.gate = make(chan struct{})
	h := startTranscriber(t, fake, DefaultOptions())
	if v, ok := h.scrape(t, DecodeQueueDepthMetric); !ok || v != 0 {
		t.Fatalf("idle: %s = %v (exported %v), want 0", DecodeQueueDepthMetric, v, ok)
	}
	const n = 3
	body, ct := form(t, [][2]string{{"model", "whisper-1"}}, sineWAV(11, 16000, 0.5)) // 3 segments: 2 gated
	results := make(chan httpResult, n)
	for range n {
		go func() { results <- h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body) }()
	}
	waitFor(t, "3 transcriptions in the decode queue metric", func() bool {
		v, _ := h.scrape(t, DecodeQueueDepthMetric)
		return v == n
	})
	for range 2 * n {
		fake.gate <- struct{}{}
	}
	for range n {
		if r := <-results; r.err != nil || r.status != http.StatusOK {
			t.Fatalf("status %d, %v: %s", r.status, r.err, trim(r.body))
		}
	}
	waitFor(t, "the decode queue metric back at 0", func() bool {
		v, _ := h.scrape(t, DecodeQueueDepthMetric)
		return v == 0
	})
}

// TestOptionRefusals: an option the Transcriber refuses
// (transcribe.ErrInvalidOption), whether when the server checks the options
// before decoding the audio or later in Transcribe, is a 400
// invalid_request_error naming the parameter over HTTP and INVALID_ARGUMENT
// over gRPC, not a server error; a beam_size that is not a number is
// refused by the form.
func TestOptionRefusals(t *testing.T) {
	refusal := fmt.Errorf("wrapped: %w", &transcribe.OptionError{Option: "beam_size", Expected: "0 to 4", Found: "9"})
	early, late := newFakeTranscriber(), newFakeTranscriber()
	early.refuse, late.refuseLate = refusal, refusal
	wav := sineWAV(1, 16000, 0.5)
	for _, fake := range []*fakeTranscriber{early, late} {
		h := startTranscriber(t, fake, DefaultOptions())
		for _, tc := range []struct {
			fields      [][2]string
			param, frag string
		}{
			{[][2]string{{"model", "whisper-1"}, {"beam_size", "9"}}, "beam_size", "transcribe: option beam_size: expected 0 to 4, found 9"},
			{[][2]string{{"model", "whisper-1"}, {"beam_size", "wide"}}, "beam_size", `beam_size "wide": want a whole number`},
			{[][2]string{{"model", "whisper-1"}, {"beam_size", "9"}, {"stream", "true"}}, "beam_size", "expected 0 to 4, found 9"},
		} {
			body, ct := form(t, tc.fields, wav)
			r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("%v: status %d, want 400: %s", tc.fields, r.status, trim(r.body))
			}
			e := decodeError(t, r)
			if e.Error.Type != "invalid_request_error" || e.Error.Param == nil || *e.Error.Param != tc.param || !strings.Contains(e.Error.Message, tc.frag) {
				t.Errorf("%v: %+v, want param %q and a message containing %q", tc.fields, e.Error, tc.param, tc.frag)
			}
		}
		stream, err := h.grpc.Transcribe(context.Background(), &encoderv1.TranscribeRequest{
			Audio: &encoderv1.Audio{Format: encoderv1.AudioFormat_AUDIO_FORMAT_WAV, Data: wav}, BeamSize: 9})
		if err != nil {
			t.Fatal(err)
		}
		_, err = recvAll(stream)
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "option beam_size") {
			t.Errorf("gRPC: %v, want INVALID_ARGUMENT about beam_size", err)
		}
		if v := h.routeCount("transcriptions", "500"); v != 0 {
			t.Errorf("%v requests answered 500", v)
		}
	}
	early.mu.Lock()
	defer early.mu.Unlock()
	if len(early.options) != 0 || len(early.checked) != 3 || early.checked[0].BeamSize != 9 {
		t.Errorf("refused by CheckOptions: %d Transcribe calls (want 0), options checked %+v (want 3 with beam size 9)", len(early.options), early.checked)
	}
}
