// Package client talks to `whisper-encoder serve`: a gRPC client for Encode,
// EncodeStream and GetModel, an HTTP client for POST /v1/encode, and a load
// generator that drives either at a fixed concurrency and reports throughput
// and latency.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// maxMessage bounds a received gRPC message (one window of the largest encoder
// is 7.7 MB as float32).
const maxMessage = 64 << 20

// Window is one encoded 30 s window.
type Window struct {
	// Hidden is last_hidden_state [1, positions, d_model] as float32.
	Hidden npy.Array
	// Index is the window's place in the input; StartSeconds where it starts
	// and AudioSeconds how much real audio it holds.
	Index                      int
	StartSeconds, AudioSeconds float64
	ModelKey, RequestID        string
	// Timings are the server's: front end, queue wait, batch compute, batch size.
	Frontend, Queue, Compute time.Duration
	Batch                    int
}

// GRPC is a client of the Encoder gRPC service.
type GRPC struct {
	conn *grpc.ClientConn
	api  encoderv1.EncoderClient
}

// Dial connects to a server's gRPC address (host:port), in plaintext unless
// opts say otherwise.
func Dial(addr string, opts ...grpc.DialOption) (*GRPC, error) {
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
	}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &GRPC{conn: conn, api: encoderv1.NewEncoderClient(conn)}, nil
}

// Close closes the connection.
func (c *GRPC) Close() error { return c.conn.Close() }

// AudioRequest builds a request for encoded audio (format AUDIO_FORMAT_UNSPECIFIED
// sniffs WAV/FLAC; PCM16 needs rate).
func AudioRequest(data []byte, format encoderv1.AudioFormat, rate int) *encoderv1.EncodeRequest {
	return &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_Audio{Audio: &encoderv1.Audio{Format: format, Data: data, SampleRate: int32(rate)}}}
}

// LogMelRequest builds a request for a log-mel [n_mels, frames] (or [1, n_mels, frames]).
func LogMelRequest(a npy.Array) (*encoderv1.EncodeRequest, error) {
	shape := a.Shape
	if len(shape) == 3 && shape[0] == 1 {
		shape = shape[1:]
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("log-mel shape %v: want [n_mels, frames] or [1, n_mels, frames]", a.Shape)
	}
	b := make([]byte, 4*len(a.Data))
	for i, v := range a.Data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: int32(shape[0]), Frames: int32(shape[1]), Data: b}}}, nil
}

// Encode encodes one window.
func (c *GRPC) Encode(ctx context.Context, req *encoderv1.EncodeRequest) (Window, error) {
	resp, err := c.api.Encode(ctx, req)
	if err != nil {
		return Window{}, err
	}
	return windowOf(resp)
}

// EncodeStream encodes every 30 s window of the request's audio, calling fn
// for each in order.
func (c *GRPC) EncodeStream(ctx context.Context, req *encoderv1.EncodeRequest, fn func(Window) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.EncodeStream(ctx, req)
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		w, err := windowOf(resp)
		if err != nil {
			return err
		}
		if err := fn(w); err != nil {
			return err
		}
	}
}

// Model describes the served model.
func (c *GRPC) Model(ctx context.Context) (*encoderv1.ModelInfo, error) {
	return c.api.GetModel(ctx, &encoderv1.GetModelRequest{})
}

// windowOf unpacks a response, converting bfloat16 to float32.
func windowOf(r *encoderv1.EncodeResponse) (Window, error) {
	t := r.GetHiddenStates()
	shape := make([]int, len(t.GetShape()))
	n := 1
	for i, d := range t.GetShape() {
		shape[i] = int(d)
		n *= int(d)
	}
	data := make([]float32, n)
	switch t.GetDtype() {
	case encoderv1.DType_D_TYPE_BFLOAT16:
		if len(t.GetData()) != 2*n {
			return Window{}, fmt.Errorf("response: shape %v bfloat16 needs %d bytes, got %d", shape, 2*n, len(t.GetData()))
		}
		for i := range data {
			data[i] = bf16.ToFloat32(binary.LittleEndian.Uint16(t.GetData()[2*i:]))
		}
	default:
		if len(t.GetData()) != 4*n {
			return Window{}, fmt.Errorf("response: shape %v float32 needs %d bytes, got %d", shape, 4*n, len(t.GetData()))
		}
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.GetData()[4*i:]))
		}
	}
	tm := r.GetTimings()
	return Window{
		Hidden: npy.Array{Shape: shape, Data: data}, Index: int(r.GetWindowIndex()),
		StartSeconds: r.GetWindowStartSeconds(), AudioSeconds: r.GetAudioSeconds(),
		ModelKey: r.GetModelKey(), RequestID: r.GetRequestId(),
		Frontend: seconds(tm.GetFrontendSeconds()), Queue: seconds(tm.GetQueueSeconds()),
		Compute: seconds(tm.GetComputeSeconds()), Batch: int(tm.GetBatchSize()),
	}, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// NewRequestID is a random 128-bit request id in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// HTTP is a client of the HTTP API.
type HTTP struct {
	// Base is the server's URL, e.g. http://127.0.0.1:8080.
	Base string
	// Client is the HTTP client (nil: http.DefaultClient).
	Client *http.Client
}

// HTTPError is a non-200 answer from the HTTP API.
type HTTPError struct {
	Status int
	// Code is the gRPC code name the server classified the failure with.
	Code, Message string
	// RetryAfter is the server's Retry-After, for 429 and 503.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// HTTPResult is a successful POST /v1/encode: hidden states
// [windows, positions, d_model] and the response headers' summary.
type HTTPResult struct {
	Hidden       npy.Array
	ModelKey     string
	RequestID    string
	AudioSeconds float64
	ServerTiming string
}

// Encode posts body with the given Content-Type (audio/wav, audio/flac,
// audio/L16;rate=N, application/octet-stream, application/x-npy) under a new
// random request id.
func (c *HTTP) Encode(ctx context.Context, body []byte, contentType string) (HTTPResult, error) {
	return c.EncodeID(ctx, NewRequestID(), body, contentType)
}

// EncodeID is Encode with the caller's request id. The id is also sent as the
// Idempotency-Key: encoding is a pure function of the input, so Go's
// transport may safely resend the request when a reused keep-alive
// connection turns out to have been closed by the server (as happens while a
// server drains) before any response arrived.
func (c *HTTP) EncodeID(ctx context.Context, id string, body []byte, contentType string) (HTTPResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.Base, "/")+"/v1/encode", bytes.NewReader(body))
	if err != nil {
		return HTTPResult{}, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/x-npy")
	req.Header.Set("X-Request-Id", id)
	req.Header.Set("Idempotency-Key", id)
	hc := c.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return HTTPResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return HTTPResult{}, httpError(resp)
	}
	a, err := npy.Read(resp.Body, 0)
	if err != nil {
		return HTTPResult{}, fmt.Errorf("response body: %w", err)
	}
	sec, _ := strconv.ParseFloat(resp.Header.Get("X-Audio-Seconds"), 64)
	return HTTPResult{Hidden: a, ModelKey: resp.Header.Get("X-Model-Key"), RequestID: resp.Header.Get("X-Request-Id"),
		AudioSeconds: sec, ServerTiming: resp.Header.Get("Server-Timing")}, nil
}

// httpError reads the server's JSON error body.
func httpError(resp *http.Response) error {
	var body struct{ Error, Code string }
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if json.Unmarshal(raw, &body) != nil {
		body.Error = strings.TrimSpace(string(raw))
	}
	e := &HTTPError{Status: resp.StatusCode, Code: body.Code, Message: body.Error}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// Get fetches path (e.g. "/metrics", "/v1/model") and returns the body.
func (c *HTTP) Get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.Base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	hc := c.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, httpError(resp)
	}
	return io.ReadAll(resp.Body)
}
