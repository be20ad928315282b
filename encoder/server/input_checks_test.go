package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
)

// TestLogMelRange: a finite but absurd log-mel (3e38, issue 13 item 9) gets
// 400 instead of Inf/NaN hidden states, while the edge of the accepted range
// still encodes to finite values on the real encoder.
func TestLogMelRange(t *testing.T) {
	h, _ := realServer(t, DefaultOptions())
	r := h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 10, 3e38), "")
	var e errorJSON
	_ = json.Unmarshal(r.body, &e)
	if r.status != http.StatusBadRequest || !strings.Contains(e.Error, "log-mel value 3e+38 at [0, 0]: want values within ±100") {
		t.Errorf("3e38 log-mel: %d %q", r.status, e.Error)
	}
	for _, v := range []float32{mel.MaxLogMel, -mel.MaxLogMel} {
		a := hidden(t, h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 3000, v), ""))
		if i := firstNonFinite(a.Data); i >= 0 {
			t.Errorf("log-mel of %v: hidden state %v at %d", v, a.Data[i], i)
		}
	}
}

// TestUnknownOutputDType: an output_dtype this server does not know is
// INVALID_ARGUMENT, not a silent float32 answer.
func TestUnknownOutputDType(t *testing.T) {
	g := newGated(fakeInfo(), false)
	h := start(t, g, fakeInfo(), DefaultOptions())
	h.waitReady(t)
	req := &encoderv1.EncodeRequest{OutputDtype: 7, Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 320)}}}
	_, err := h.grpc.Encode(context.Background(), req)
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "output_dtype 7") {
		t.Errorf("output_dtype 7: %v, want INVALID_ARGUMENT naming it", err)
	}
	req.OutputDtype = encoderv1.DType_D_TYPE_BFLOAT16
	if resp, err := h.grpc.Encode(context.Background(), req); err != nil || resp.GetHiddenStates().GetDtype() != encoderv1.DType_D_TYPE_BFLOAT16 {
		t.Errorf("bfloat16: %v", err)
	}
}

// TestRequestIDBounded: a client's request id is echoed only when it is
// short and made of safe characters; otherwise the server names the request.
// Headers over 64 KiB in all (a 1 MiB id) are refused with 431.
func TestRequestIDBounded(t *testing.T) {
	g := newGated(fakeInfo(), false)
	h := start(t, g, fakeInfo(), DefaultOptions())
	h.waitReady(t)
	body := constMel(t, 80, 10, 0)
	req, _ := http.NewRequest(http.MethodPost, h.base+"/v1/encode", strings.NewReader(string(body)))
	req.Header.Set("X-Request-Id", strings.Repeat("x", 1<<20))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("X-Request-Id") != "" {
		t.Errorf("1 MiB X-Request-Id: %v %v, want 431 without an echo", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, tc := range []struct {
		name, id string
		echoed   bool
	}{
		{"uuid", "0b5e2c1a-7f1d-4e0b-9d6b-2a1f3c4d5e6f", true},
		{"trace id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"4 KiB", strings.Repeat("x", 4<<10), false},
		{"129 chars", strings.Repeat("y", 129), false},
		{"spaces and quotes", `a "b" c`, false},
		{"html", "<script>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.base+"/v1/encode", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", ContentTypeNPY)
			req.Header.Set("X-Request-Id", tc.id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("X-Request-Id")
			if tc.echoed && got != tc.id || !tc.echoed && (got == tc.id || !validRequestID(got)) {
				t.Errorf("X-Request-Id %.40q (%d bytes), want echoed=%v", got, len(got), tc.echoed)
			}
			gr := &encoderv1.EncodeRequest{RequestId: tc.id, Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 320)}}}
			resp2, err := h.grpc.Encode(context.Background(), gr)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp2.GetRequestId(); tc.echoed && got != tc.id || !tc.echoed && (got == tc.id || !validRequestID(got)) {
				t.Errorf("gRPC request_id %.40q, want echoed=%v", got, tc.echoed)
			}
		})
	}
}
