package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// Limits of a transcription form besides its file.
const (
	maxFormField = 64 << 10 // one field's value (a prompt)
	maxFormParts = 64
)

// transcriptionRoutes registers the OpenAI-compatible routes.
func (s *Server) transcriptionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/audio/transcriptions", s.handleTranscription("transcriptions", tokenizer.Transcribe))
	mux.HandleFunc("POST /v1/audio/translations", s.handleTranscription("translations", tokenizer.Translate))
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /v1/models/{id}", s.handleModelByID)
}

// modelObject is OpenAI's Model, with what the model can do.
type modelObject struct {
	ID           string                  `json:"id"`
	Object       string                  `json:"object"`
	Created      int64                   `json:"created"`
	OwnedBy      string                  `json:"owned_by"`
	Capabilities transcribe.Capabilities `json:"capabilities"`
}

func (s *Server) model() modelObject {
	return modelObject{ID: s.modelID(), Object: "model", Created: s.started.Unix(), OwnedBy: "xdna-whisper", Capabilities: s.capabilities()}
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	s.metrics.routes.WithLabelValues("models", "200").Inc()
	writeJSON(w, http.StatusOK, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", []modelObject{s.model()}})
}

func (s *Server) handleModelByID(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !contains(s.modelIDs(), id) {
		s.metrics.routes.WithLabelValues("models", "404").Inc()
		e := invalid("model", "model %q is not served here: want one of %s", id, quoteList(s.modelIDs())).withCode("model_not_found")
		e.Status = http.StatusNotFound
		s.writeAPIError(w, e)
		return
	}
	s.metrics.routes.WithLabelValues("models", "200").Inc()
	m := s.model()
	m.ID = id
	writeJSON(w, http.StatusOK, m)
}

// handleTranscription serves POST /v1/audio/{transcriptions,translations}.
func (s *Server) handleTranscription(route string, task tokenizer.Task) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.active.Add(1)
		defer s.active.Add(-1)
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		req := s.newRequest("http_"+route, r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Request-Id", req.id)
		status, err := s.serveTranscription(w, r, req, task)
		if err != nil && status == 0 { // nothing written yet
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
			e := asAPIError(err)
			s.writeAPIError(w, e)
			status = e.Status
		}
		s.metrics.routes.WithLabelValues(route, strconv.Itoa(status)).Inc()
		s.finish(req, grpcError(err))
	}
}

// serveTranscription reads, admits and runs one request and writes its
// answer. It returns the status it wrote (0: none) and the request's error.
func (s *Server) serveTranscription(w http.ResponseWriter, r *http.Request, req *request, task tokenizer.Task) (int, error) {
	if err := s.admitTranscription(); err != nil {
		return 0, err
	}
	var form transcriptionForm
	var file []byte
	release, err := s.receive(w, r, func(rc *reception) error {
		var err error
		file, err = s.readForm(rc, r, &form)
		return err
	})
	in := transcription{audio: file, release: release}
	if err != nil {
		if release != nil {
			release()
		}
		return 0, err
	}
	o, err := form.check(task, s.modelIDs(), s.capabilities())
	if err != nil {
		release()
		return 0, err
	}
	ctx, cancel := s.transcribeContext(r.Context())
	defer cancel()
	if form.stream {
		return s.streamTranscription(ctx, w, req, in, o)
	}
	res, err := s.transcribe(ctx, req, in, o, nil)
	if err != nil {
		return 0, err
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	w.Header().Set("Content-Type", contentType(form.format))
	w.WriteHeader(http.StatusOK)
	if err := writeTranscription(w, form.format, task, res, form.granularity); err != nil {
		s.log.Warn("writing response", "request_id", req.id, "error", err)
	}
	return http.StatusOK, nil
}

// readForm reads a multipart/form-data body: the fields into f, the file
// into memory within MaxRequestBytes and the upload budget. Fields other
// than the file are small (maxFormField) and few (maxFormParts).
func (s *Server) readForm(rc *reception, r *http.Request, f *transcriptionForm) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		e := invalid("", "Content-Type %q: want multipart/form-data with a boundary (fields file, model, ...)", ct)
		e.Status = http.StatusUnsupportedMediaType
		return nil, e
	}
	body := &countingReader{r: r.Body}
	mr := multipart.NewReader(io.LimitReader(body, s.opts.MaxRequestBytes+1), params["boundary"])
	var file []byte
	haveFile := false
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, s.formError(rc, body, err)
		}
		if parts == maxFormParts {
			return nil, invalid("", "multipart body: more than %d parts", maxFormParts)
		}
		name := p.FormName()
		switch {
		case name == "file":
			if haveFile {
				return nil, invalid("file", "multipart body: more than one file part")
			}
			haveFile = true
			size := int64(-1)
			if r.ContentLength >= 0 {
				size = r.ContentLength // the file is smaller: reserve once
			}
			if file, err = s.readPart(rc, p, size); err != nil {
				return nil, s.formError(rc, body, err)
			}
		default:
			v, err := io.ReadAll(io.LimitReader(p, maxFormField+1))
			if err != nil {
				return nil, s.formError(rc, body, err)
			}
			if len(v) > maxFormField {
				return nil, invalid(name, "field %s: over %d bytes", name, maxFormField)
			}
			if err := f.set(name, string(v)); err != nil {
				return nil, err
			}
		}
	}
	if body.n > s.opts.MaxRequestBytes {
		return nil, tooLarge(-1, s.opts.MaxRequestBytes)
	}
	if !haveFile {
		return nil, invalid("file", "you must provide a file (multipart field \"file\": WAV or FLAC audio)")
	}
	return file, nil
}

// readPart reads the file part; size bounds it when known (the body's length).
func (s *Server) readPart(rc *reception, p io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return s.readAll(rc, p, -1)
	}
	if err := rc.take(size); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			var one [1]byte
			if n, _ := p.Read(one[:]); n > 0 {
				return nil, invalid("file", "multipart body: file part longer than the body (%d bytes)", size)
			}
		}
		n, err := p.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// formError classifies a failed multipart read: over the size limit (413),
// a transport failure (drain 503, timeout 408, client gone 400), or a body
// that is not valid multipart (400).
func (s *Server) formError(rc *reception, body *countingReader, err error) error {
	var ae *apiError
	var se *Error
	switch {
	case body.n > s.opts.MaxRequestBytes: // the limit cut the body short
		return tooLarge(-1, s.opts.MaxRequestBytes)
	case errors.As(err, &ae), errors.As(err, &se):
		return err
	case rc.drained.Load() || errors.Is(err, os.ErrDeadlineExceeded) || body.err != nil && !errors.Is(body.err, io.EOF):
		return s.bodyError(err, rc.drained.Load(), body.n, -1)
	}
	return invalid("", "multipart body is malformed: %v", err)
}

// countingReader counts the bytes read and keeps the first read error.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// streamTranscription answers as server-sent events: one
// transcript.text.delta per decided segment, then transcript.text.done (or
// an error event if the transcription fails after the stream began).
func (s *Server) streamTranscription(ctx context.Context, w http.ResponseWriter, req *request, in transcription, o transcribe.Options) (int, error) {
	ctl := http.NewResponseController(w)
	started := false
	begin := func() {
		if started {
			return
		}
		started = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
	}
	send := func(v any) error {
		begin()
		_ = ctl.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		return writeEvent(w, ctl, "", v)
	}
	res, err := s.transcribe(ctx, req, in, o, func(seg transcribe.Segment) error {
		return send(textDelta{Type: "transcript.text.delta", Delta: tokenizer.ValidUTF8(seg.Text)})
	})
	if err != nil {
		if !started {
			return 0, err // nothing sent: an ordinary error response
		}
		_ = ctl.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		e := asAPIError(err)
		if ctx.Err() == nil || s.cut.Err() != nil { // a client that left reads nothing
			_ = writeEvent(w, ctl, "error", struct {
				Error *apiError `json:"error"`
			}{e})
		}
		return http.StatusOK, err
	}
	if err := send(textDone{Type: "transcript.text.done", Text: tokenizer.ValidUTF8(res.Text)}); err != nil {
		return http.StatusOK, err
	}
	return http.StatusOK, nil
}

// textDelta and textDone are OpenAI's TranscriptionTextDeltaEvent and
// TranscriptionTextDoneEvent.
type textDelta struct {
	Type  string `json:"type"`
	Delta string `json:"delta"`
}

type textDone struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// writeEvent writes one server-sent event (event empty: the default
// "message") and flushes it.
func writeEvent(w io.Writer, ctl *http.ResponseController, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	return ctl.Flush()
}

// writeAPIError writes an OpenAI error object.
func (s *Server) writeAPIError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
	}
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

// grpcError gives an API error the code the request log and metrics use.
func grpcError(err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	c := codes.InvalidArgument
	switch {
	case ae.Code != nil && *ae.Code == "unsupported_task":
		c = codes.FailedPrecondition
	case ae.Status == http.StatusTooManyRequests:
		c = codes.ResourceExhausted
	case ae.Status == http.StatusServiceUnavailable:
		c = codes.Unavailable
	case ae.Status == http.StatusNotFound:
		c = codes.NotFound
	case ae.Status >= 500:
		c = codes.Internal
	}
	return &Error{Code: c, Msg: ae.Message, HTTPStatus: ae.Status}
}
