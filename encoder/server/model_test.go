package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// The data-path tests run the REAL encoder (encoder/model) on the bundled
// demo model (d_model 64, 2 layers, 80 mel bins, 1500 positions), staged from
// its ONNX file once per test binary.

var (
	stageOnce sync.Once
	stagedDir string
	stageErr  error
)

// stagedDemo stages the bundled model into a directory removed by TestMain.
func stagedDemo(t testing.TB) string {
	t.Helper()
	stageOnce.Do(func() {
		root, err := os.MkdirTemp("", "server-test-")
		if err != nil {
			stageErr = err
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(root) })
		stagedDir, stageErr = converttest.Demo(root)
	})
	if stageErr != nil {
		t.Fatal(stageErr)
	}
	return stagedDir
}

var cleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

// realServer loads the staged demo model and serves it.
func realServer(t *testing.T, opts Options) (*harness, *model.Encoder) {
	t.Helper()
	dir := stagedDemo(t)
	enc, err := model.Load(dir, model.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	info, err := InfoFor(dir, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	info.Engine = enc.Backend()
	info.Kernels = enc.Kernels()
	h := start(t, ModelEncoder(enc), info, opts)
	h.waitReady(t)
	return h, enc
}

// direct encodes 16 kHz samples the way the server should: log-mel per 30 s
// window, then the encoder, with no server in between.
func direct(t *testing.T, enc *model.Encoder, samples []float32) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, w := range mel.Windows(samples) {
		m, err := mel.LogMel(w, 80)
		if err != nil {
			t.Fatal(err)
		}
		h, err := enc.Encode(context.Background(), model.Tensor{Shape: []int{1, 80, mel.Frames}, Data: m})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Data)
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var worst float64
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
	}
	return worst
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	speechWAV = "../../encoder/bundled/speech_22k.wav"
	jfkFLAC   = "../../../shared/data/whisper/jfk.flac"
)

// TestHTTPEncodeSpeech: the bundled espeak-ng clip (22.05 kHz WAV) over HTTP
// gives the encoder's output for its log-mel, as .npy and as JSON.
func TestHTTPEncodeSpeech(t *testing.T) {
	h, enc := realServer(t, DefaultOptions())
	wav := readFile(t, speechWAV)
	samples, err := audio.Load(wav, audio.FormatWAV, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := direct(t, enc, samples)[0]

	r := h.post(context.Background(), "audio/wav", wav, "")
	a := hidden(t, r)
	if fmt.Sprint(a.Shape) != "[1 1500 64]" {
		t.Fatalf("shape %v, want [1 1500 64]", a.Shape)
	}
	if d := maxDiff(a.Data, want); d > 1e-5 {
		t.Errorf("max |server - direct encode| = %g", d)
	}
	if r.header.Get("X-Model-Key") == "" || r.header.Get("X-Audio-Seconds") != "8.449" || !strings.Contains(r.header.Get("Server-Timing"), "compute;dur=") {
		t.Errorf("headers %v", r.header)
	}

	r = h.post(context.Background(), "application/octet-stream", wav, "application/json")
	var js encodeJSON
	if err := json.Unmarshal(r.body, &js); err != nil || r.status != http.StatusOK {
		t.Fatalf("JSON response: %d %v %s", r.status, err, trim(r.body))
	}
	if fmt.Sprint(js.Shape) != "[1 1500 64]" || len(js.Windows) != 1 || js.Windows[0].AudioSeconds < 8.4 {
		t.Errorf("JSON shape %v windows %+v", js.Shape, js.Windows)
	}
	if d := maxDiff(js.Data, want); d > 1e-5 {
		t.Errorf("JSON: max |server - direct encode| = %g", d)
	}
}

// TestGRPCEncodeAndStream: jfk.flac (24-bit stereo 44.1 kHz) by Encode, in
// float32 and bfloat16; 65 s of audio by EncodeStream as three windows in
// order; a log-mel input by Encode.
func TestGRPCEncodeAndStream(t *testing.T) {
	h, enc := realServer(t, DefaultOptions())
	flac := readFile(t, jfkFLAC)
	samples, err := audio.Load(flac, audio.FormatFLAC, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := direct(t, enc, samples)[0]
	ctx := context.Background()
	req := &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_Audio{Audio: &encoderv1.Audio{Format: encoderv1.AudioFormat_AUDIO_FORMAT_FLAC, Data: flac}}, RequestId: "jfk-1"}
	resp, err := h.grpc.Encode(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := floats(t, resp.HiddenStates)
	if fmt.Sprint(resp.HiddenStates.Shape) != "[1 1500 64]" || resp.RequestId != "jfk-1" || resp.ModelKey == "" || math.Abs(resp.AudioSeconds-11) > 1e-3 {
		t.Errorf("response shape %v id %q key %q audio %g s", resp.HiddenStates.Shape, resp.RequestId, resp.ModelKey, resp.AudioSeconds)
	}
	if d := maxDiff(got, want); d > 1e-5 {
		t.Errorf("max |server - direct encode| = %g", d)
	}

	req.OutputDtype = encoderv1.DType_D_TYPE_BFLOAT16
	resp, err = h.grpc.Encode(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.HiddenStates.Dtype != encoderv1.DType_D_TYPE_BFLOAT16 || len(resp.HiddenStates.Data) != 2*len(want) {
		t.Fatalf("bf16 response: dtype %v, %d bytes", resp.HiddenStates.Dtype, len(resp.HiddenStates.Data))
	}
	for i := range want {
		if g := bf16.ToFloat32(binary.LittleEndian.Uint16(resp.HiddenStates.Data[2*i:])); g != bf16.ToFloat32(bf16.FromFloat32(want[i])) {
			t.Fatalf("bf16 value %d = %g, want %g rounded to bf16", i, g, want[i])
		}
	}

	// 65 s: the speech clip repeated, then EncodeStream.
	speech, err := audio.Load(readFile(t, speechWAV), audio.FormatWAV, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var long []float32
	for len(long) < 65*audio.SampleRate {
		long = append(long, speech...)
	}
	long = long[:65*audio.SampleRate]
	wav := audio.EncodeWAV16(audio.Clip{Rate: audio.SampleRate, Channels: 1, Samples: long})
	quantised, err := audio.Load(wav, audio.FormatWAV, 0, 0) // what the server decodes: PCM16
	if err != nil {
		t.Fatal(err)
	}
	wantWindows := direct(t, enc, quantised)
	stream, err := h.grpc.EncodeStream(ctx, &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_Audio{Audio: &encoderv1.Audio{Data: wav}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		resp, err := stream.Recv()
		if err == io.EOF {
			if i != 3 {
				t.Fatalf("%d windows, want 3", i)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if int(resp.WindowIndex) != i || resp.WindowStartSeconds != float64(30*i) {
			t.Errorf("window %d: index %d start %g", i, resp.WindowIndex, resp.WindowStartSeconds)
		}
		if wantSec := []float64{30, 30, 5}[i]; resp.AudioSeconds != wantSec {
			t.Errorf("window %d: %g s of audio, want %g", i, resp.AudioSeconds, wantSec)
		}
		if d := maxDiff(floats(t, resp.HiddenStates), wantWindows[i]); d > 1e-5 {
			t.Errorf("window %d: max |server - direct encode| = %g", i, d)
		}
	}

	// Log-mel input: Whisper's log-mel of jfk from the torch reference.
	ref := readFile(t, "../../testdata/mel/jfk_80.npy")
	a, err := npy.Read(bytes.NewReader(ref), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantMel, err := enc.Encode(ctx, model.Tensor{Shape: []int{1, 80, 3000}, Data: a.Data})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = h.grpc.Encode(ctx, &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 3000, Data: f32bytes(a.Data)}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(floats(t, resp.HiddenStates), wantMel.Data); d > 1e-5 {
		t.Errorf("log-mel input: max |server - direct encode| = %g", d)
	}
	info, err := h.grpc.GetModel(ctx, &encoderv1.GetModelRequest{})
	if err != nil || info.Backend != "cpu" || info.DModel != 64 || info.Positions != 1500 || info.Engine == "" {
		t.Errorf("GetModel = %v, %v", info, err)
	}
}

func floats(t *testing.T, x *encoderv1.Tensor) []float32 {
	t.Helper()
	if x.Dtype != encoderv1.DType_D_TYPE_FLOAT32 || len(x.Data)%4 != 0 {
		t.Fatalf("tensor dtype %v with %d bytes", x.Dtype, len(x.Data))
	}
	out := make([]float32, len(x.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(x.Data[4*i:]))
	}
	return out
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// TestBadInputKeepsServing sends a mixed stream of bad and good requests over
// both transports: every bad one gets a 4xx / INVALID_ARGUMENT saying what was
// wrong, and every good one after it still succeeds.
func TestBadInputKeepsServing(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxRequestBytes = 4 << 20
	opts.MaxAudioSeconds = 60
	h, _ := realServer(t, opts)
	wav := readFile(t, "../../testdata/audio/jfk_1s_s16.wav")
	lying := append([]byte(nil), wav...)
	binary.LittleEndian.PutUint32(lying[40:], uint32(len(wav)*3))
	corrupt := append([]byte(nil), readFile(t, "../../testdata/audio/jfk_1s_s24.flac")...)
	corrupt[len(corrupt)/2] ^= 0x40
	nan := make([]float32, 80*10)
	nan[45] = float32(math.NaN())
	long := audio.EncodeWAV16(audio.Clip{Rate: 8000, Channels: 1, Samples: make([]float32, 61*8000)})
	oversize := audio.EncodeWAV16(audio.Clip{Rate: 16000, Channels: 1, Samples: make([]float32, 2<<20+10)})
	npyOf := func(shape []int, data []float32) []byte {
		var buf bytes.Buffer
		if err := npy.Write(&buf, npy.Array{Shape: shape, Data: data}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := func() {
		t.Helper()
		if r := h.post(context.Background(), "audio/wav", wav, ""); r.status != http.StatusOK {
			t.Fatalf("good request after a bad one: %d %s", r.status, trim(r.body))
		}
	}
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		status            int
		want              string
	}{
		{"empty body", "audio/wav", nil, 400, "empty request body"},
		{"corrupt flac", "audio/flac", corrupt, 400, "flac: frame"},
		{"wav header lies about length", "audio/wav", lying, 400, "lies about its length"},
		{"not audio", "application/octet-stream", []byte("hello, this is not audio"), 400, "unrecognised data"},
		{"pcm16 without rate", "audio/L16", make([]byte, 100), 400, "must declare its rate"},
		{"unsupported type", "audio/mpeg", wav, 415, "want audio/wav"},
		{"audio too long", "audio/wav", long, 400, "61.00 s long, limit is 60 s"},
		{"body over the limit", "audio/wav", oversize, 413, "over the limit of 4194304 bytes"},
		{"wrong n_mels", ContentTypeNPY, npyOf([]int{128, 10}, make([]float32, 1280)), 400, "n_mels 128, this model takes 80"},
		{"too many frames", ContentTypeNPY, npyOf([]int{80, 3001}, make([]float32, 80*3001)), 400, "3001 frames, want 1 to 3000"},
		{"NaN in log-mel", ContentTypeNPY, npyOf([]int{80, 10}, nan), 400, "value NaN at [4, 5]"},
		{"3-D batch of two", ContentTypeNPY, npyOf([]int{2, 80, 10}, make([]float32, 1600)), 400, "want [n_mels, frames] or [1, n_mels, frames]"},
		{"truncated npy", ContentTypeNPY, npyOf([]int{80, 10}, make([]float32, 800))[:200], 400, "log-mel body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post(context.Background(), tc.contentType, tc.body, "")
			var e errorJSON
			_ = json.Unmarshal(r.body, &e)
			if r.status != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Errorf("status %d error %q, want %d with %q", r.status, e.Error, tc.status, tc.want)
			}
			good()
		})
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  *encoderv1.EncodeRequest
		want string
	}{
		{"no input", &encoderv1.EncodeRequest{}, "neither audio nor log_mel"},
		{"log-mel bytes not float32", &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 321)}}}, "not a whole number of float32"},
		{"log-mel shape disagrees with data", &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 2, Data: make([]byte, 320)}}}, "holds 160 values, got 80"},
		{"Encode of 61 s", &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_Audio{Audio: &encoderv1.Audio{Data: audio.EncodeWAV16(audio.Clip{Rate: 8000, Channels: 1, Samples: make([]float32, 50*8000)})}}}, "use EncodeStream"},
		{"empty audio", &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_Audio{Audio: &encoderv1.Audio{}}}, "empty audio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.grpc.Encode(ctx, tc.req)
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.want) {
				t.Errorf("%v, want INVALID_ARGUMENT with %q", err, tc.want)
			}
			good()
		})
	}
	if n := h.requests("http_encode", "InvalidArgument"); n != 13 {
		t.Errorf("requests_total{http_encode,InvalidArgument} = %g, want 13", n)
	}
}

// TestModelAndMetricsEndpoints checks /v1/model and the metrics autoscaling
// and operators rely on.
func TestModelAndMetricsEndpoints(t *testing.T) {
	h, _ := realServer(t, DefaultOptions())
	if r := h.post(context.Background(), "audio/wav", readFile(t, speechWAV), ""); r.status != http.StatusOK {
		t.Fatalf("encode: %d", r.status)
	}
	resp, err := http.Get(h.base + "/v1/model")
	if err != nil {
		t.Fatal(err)
	}
	var info Info
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Backend != "cpu" || info.NMels != 80 || info.DModel != 64 || info.Layers != 2 || info.ModelKey == "" || info.Precision != "bfloat16" || info.Kernels != kernels.Detect().String() {
		t.Errorf("/v1/model = %+v, %v", info, err)
	}
	resp, err = http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`whisper_encoder_backend_info{backend="cpu",model_key="` + info.ModelKey + `"} 1`,
		`whisper_encoder_kernels_info{engine="` + info.Engine + `",kernels="` + kernels.Detect().String() + `"} 1`,
		"whisper_encoder_queue_depth 0",
		"whisper_encoder_queue_capacity 32",
		`whisper_encoder_requests_total{code="OK",method="http_encode"} 1`,
		"whisper_encoder_windows_encoded_total 2", // warm-up and the request
		"whisper_encoder_audio_seconds_total 8.4",
		"whisper_encoder_batch_size_bucket",
		"whisper_encoder_queue_wait_seconds_bucket",
		"whisper_encoder_compute_seconds_bucket",
		"whisper_encoder_backend_busy_seconds_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
