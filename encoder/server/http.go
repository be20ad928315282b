package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// Media types of the HTTP API.
const (
	ContentTypeNPY  = "application/x-npy"
	ContentTypeJSON = "application/json"
)

// HTTPHandler serves the HTTP API:
//
//	POST /v1/encode  audio (Content-Type audio/wav, audio/flac, audio/L16;rate=N,
//	                 or application/octet-stream to sniff WAV/FLAC) or a log-mel
//	                 .npy [n_mels, frames] (application/x-npy); returns .npy
//	                 float32 [windows, positions, d_model], or JSON when the
//	                 Accept header asks for application/json
//	GET  /v1/model   the served model (JSON)
//	GET  /healthz    liveness: 200 while the process serves HTTP
//	GET  /readyz     readiness: 200 once warmed up, 503 before and while draining
//	GET  /metrics    Prometheus metrics
//
// and OpenAI's transcription API (see transcriptionRoutes):
//
//	POST /v1/audio/transcriptions, /v1/audio/translations  multipart form:
//	                 file (WAV or FLAC), model, language, prompt,
//	                 response_format (json, text, srt, vtt, verbose_json),
//	                 temperature, timestamp_granularities[], stream (SSE)
//	GET  /v1/models, /v1/models/{id}
//
// With Options.Auth every path but the probes (and /metrics, unless
// Options.AuthMetrics) needs a bearer token (see withAuth).
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/encode", s.handleEncode)
	mux.HandleFunc("GET /v1/model", s.handleModel)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{}))
	s.transcriptionRoutes(mux)
	return s.withAuth(mux)
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.unready.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "shutting down")
	case !s.ready.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "warming up")
	default:
		fmt.Fprintln(w, "ready")
	}
}

func (s *Server) handleModel(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.info)
}

// encodeJSON is the JSON form of an encode response.
type encodeJSON struct {
	RequestID string       `json:"requestId"`
	ModelKey  string       `json:"modelKey"`
	Shape     []int        `json:"shape"`
	Windows   []windowJSON `json:"windows"`
	Data      []float32    `json:"data"`
}

// windowJSON is one window's metadata in a JSON response.
type windowJSON struct {
	StartSeconds    float64 `json:"startSeconds"`
	AudioSeconds    float64 `json:"audioSeconds"`
	FrontendSeconds float64 `json:"frontendSeconds"`
	QueueSeconds    float64 `json:"queueSeconds"`
	ComputeSeconds  float64 `json:"computeSeconds"`
	BatchSize       int     `json:"batchSize"`
}

func (s *Server) handleEncode(w http.ResponseWriter, r *http.Request) {
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	req := s.newRequest("http_encode", r.Header.Get("X-Request-Id"))
	w.Header().Set("X-Request-Id", req.id)
	var windows []window
	maxWindows := int(math.Ceil(s.opts.MaxAudioSeconds/30)) + 1
	err := s.encode(r.Context(), req, func() (input, error) { return s.readInput(w, r) }, maxWindows, func(win window) error {
		windows = append(windows, win)
		return nil
	})
	s.finish(req, err)
	// A client that stops reading its response is cut after WriteTimeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeWindows(w, r, req, windows)
}

// readInput reads the body within the size limit and the upload budget and
// interprets it by its Content-Type.
func (s *Server) readInput(w http.ResponseWriter, r *http.Request) (input, error) {
	body, release, err := s.readBody(w, r)
	if err != nil {
		return input{release: release}, err
	}
	in, err := parseInput(r, body)
	in.release = release
	return in, err
}

// parseInput interprets a request body by its Content-Type.
func parseInput(r *http.Request, body []byte) (input, error) {
	if len(body) == 0 {
		return input{}, errorf(codes.InvalidArgument, "empty request body: send audio (audio/wav, audio/flac, audio/L16) or a log-mel (%s)", ContentTypeNPY)
	}
	ct := r.Header.Get("Content-Type")
	mediaType, params, err := mime.ParseMediaType(ct)
	if ct == "" || mediaType == "application/octet-stream" {
		return input{audio: body, format: audio.FormatUnknown}, nil
	}
	if err != nil {
		return input{}, &Error{Code: codes.InvalidArgument, Msg: fmt.Sprintf("Content-Type %q: %v", ct, err), HTTPStatus: http.StatusUnsupportedMediaType}
	}
	if mediaType == ContentTypeNPY {
		return readNPY(body)
	}
	f, err := audio.ParseFormat(mediaType)
	if err != nil {
		return input{}, &Error{Code: codes.InvalidArgument, HTTPStatus: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("Content-Type %q: want audio/wav, audio/flac, audio/L16;rate=N, application/octet-stream or %s", ct, ContentTypeNPY)}
	}
	rate := 0
	if v := params["rate"]; v != "" {
		if rate, err = strconv.Atoi(v); err != nil {
			return input{}, errorf(codes.InvalidArgument, "Content-Type %q: rate %q is not an integer", ct, v)
		}
	} else if v := r.URL.Query().Get("rate"); v != "" {
		if rate, err = strconv.Atoi(v); err != nil {
			return input{}, errorf(codes.InvalidArgument, "query rate=%q is not an integer", v)
		}
	}
	return input{audio: body, format: f, rate: rate}, nil
}

// readNPY reads a log-mel [n_mels, frames] or [1, n_mels, frames] .npy body.
func readNPY(body []byte) (input, error) {
	a, err := npy.Read(bytes.NewReader(body), len(body)/4+1)
	if err != nil {
		return input{}, errorf(codes.InvalidArgument, "log-mel body: %v", err)
	}
	shape := a.Shape
	if len(shape) == 3 && shape[0] == 1 {
		shape = shape[1:]
	}
	if len(shape) != 2 {
		return input{}, errorf(codes.InvalidArgument, "log-mel body: shape %v, want [n_mels, frames] or [1, n_mels, frames]", a.Shape)
	}
	return input{isMel: true, logMel: a.Data, nMels: shape[0], frames: shape[1]}, nil
}

// tooLarge is the refusal of a body over MaxRequestBytes.
func tooLarge(got, limit int64) error {
	msg := fmt.Sprintf("request body is over the limit of %d bytes", limit)
	if got > 0 {
		msg = fmt.Sprintf("request body is %d bytes, over the limit of %d bytes", got, limit)
	}
	return &Error{Code: codes.InvalidArgument, Msg: msg, HTTPStatus: http.StatusRequestEntityTooLarge}
}

// writeWindows sends the hidden states as .npy or JSON, window by window
// (never joined into one buffer).
func (s *Server) writeWindows(w http.ResponseWriter, r *http.Request, req *request, windows []window) {
	p, d := s.info.Positions, s.info.DModel
	chunks := make([][]float32, len(windows))
	meta := make([]windowJSON, len(windows))
	for i, win := range windows {
		chunks[i] = win.out
		meta[i] = windowJSON{
			StartSeconds: win.startSeconds, AudioSeconds: win.audioSeconds, FrontendSeconds: win.frontend.Seconds(),
			QueueSeconds: win.queueWait.Seconds(), ComputeSeconds: win.compute.Seconds(), BatchSize: win.batch,
		}
	}
	shape := []int{len(windows), p, d}
	h := w.Header()
	h.Set("X-Model-Key", s.info.ModelKey)
	h.Set("X-Windows", strconv.Itoa(len(windows)))
	h.Set("X-Audio-Seconds", strconv.FormatFloat(req.audioSec, 'f', 3, 64))
	last := windows[len(windows)-1]
	h.Set("Server-Timing", fmt.Sprintf("frontend;dur=%.1f, queue;dur=%.1f, compute;dur=%.1f",
		ms(last.frontend), ms(last.queueWait), ms(last.compute)))
	var err error
	if wantsJSON(r) {
		h.Set("Content-Type", ContentTypeJSON)
		err = writeEncodeJSON(w, encodeJSON{RequestID: req.id, ModelKey: s.info.ModelKey, Shape: shape, Windows: meta}, chunks)
	} else {
		h.Set("Content-Type", ContentTypeNPY)
		err = npy.WriteChunks(w, shape, chunks...)
	}
	if err != nil {
		s.log.Warn("writing response", "request_id", req.id, "error", err)
	}
}

// writeEncodeJSON writes e with its data field made of the chunks' values,
// streamed rather than marshalled whole (encoding/json would build the
// whole text, ~10 bytes a value, in memory first).
func writeEncodeJSON(w io.Writer, e encodeJSON, chunks [][]float32) error {
	head, err := json.Marshal(e)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head[:len(head)-len(`,"data":null}`)])
	bw.WriteString(`,"data":[`)
	var num []byte
	first := true
	for _, c := range chunks {
		for _, v := range c {
			if !first {
				bw.WriteByte(',')
			}
			first = false
			num = strconv.AppendFloat(num[:0], float64(v), 'g', -1, 32)
			bw.Write(num)
		}
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// wantsJSON reports whether the Accept header prefers JSON.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == ContentTypeJSON {
			return true
		}
	}
	return false
}

// errorJSON is the body of every HTTP error.
type errorJSON struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// writeError maps an encode error to an HTTP status and JSON body.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	code := codeOf(err)
	status := httpStatus(err)
	if code == codes.ResourceExhausted || code == codes.Unavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
	}
	writeJSON(w, status, errorJSON{Error: err.Error(), Code: code.String()})
}

// httpStatus is the HTTP status for an encode error.
func httpStatus(err error) int {
	var e *Error
	if errors.As(err, &e) && e.HTTPStatus != 0 {
		return e.HTTPStatus
	}
	switch codeOf(err) {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499 // client closed the request (nginx's convention); nobody reads it
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
