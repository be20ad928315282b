package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
)

// stalledHTTP sends a request's headers declaring length body bytes, then
// only the first sent of them, and waits. The response, whenever the server
// sends one, arrives on the returned channel.
func stalledHTTP(t *testing.T, base string, length, sent int) (net.Conn, <-chan *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n\r\n", length)
	if _, err := conn.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			close(got)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		got <- resp
	}()
	return conn, got
}

// stalledGRPC opens an HTTP/2 stream for Encode and sends a message prefix
// declaring length bytes, then only sent of them. The channel receives how
// the stream ended: "grpc-status N", "rst" or "closed".
func stalledGRPC(t *testing.T, addr string, length, sent int) <-chan string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", encoderv1.Encoder_Encode_FullMethodName},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	msg := make([]byte, 5+sent)
	binary.BigEndian.PutUint32(msg[1:], uint32(length))
	if err := errorsJoin(fr.WriteSettings(), fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}),
		fr.WriteData(1, false, msg)); err != nil {
		t.Fatal(err)
	}
	end := make(chan string, 1)
	var once sync.Once
	report := func(how string) { once.Do(func() { end <- how }) } // then keep reading, as a live client does
	go func() {
		dec := hpack.NewDecoder(4096, nil)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				report("closed")
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = fr.WritePing(true, f.Data)
				}
			case *http2.RSTStreamFrame:
				report("rst")
			case *http2.HeadersFrame:
				fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
				for _, hf := range fields {
					if hf.Name == "grpc-status" {
						report("grpc-status " + hf.Value)
					}
				}
			}
		}
	}()
	return end
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestDrainCutsStalledUploads: at shutdown an HTTP upload and a gRPC message
// that stopped arriving are cut (503 / the stream ends) instead of holding
// the drain, the request already accepted and computing still completes, and
// Run returns nil (serve exits 0). Before, the drain waited out its timeout
// and failed.
func TestDrainCutsStalledUploads(t *testing.T) {
	g := newGated(fakeInfo(), true)
	opts := DefaultOptions()
	opts.ReadTimeout = 1 << 40 // only the drain may cut them
	h := start(t, g, fakeInfo(), opts)
	g.release(1)
	h.waitReady(t)
	<-g.started

	accepted := make(chan httpResult, 1)
	body := constMel(t, 80, 10, 1)
	go func() { accepted <- h.post(context.Background(), ContentTypeNPY, body, "") }()
	<-g.started // computing, held by the gate
	_, httpResp := stalledHTTP(t, h.base, 100000, 1000)
	grpcEnd := stalledGRPC(t, h.conn.Target(), 100000, 1000)
	want := float64(len(body) + 100000 + int(h.s.grpcReservation())) // the accepted body is held until its request ends
	waitFor(t, "both uploads reserved", func() bool { return testutil.ToFloat64(h.s.metrics.uploadBytes) == want })

	h.stop()
	resp := <-httpResp
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("stalled HTTP upload at drain: %v, want 503", resp)
	} else if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "upload was cut after 1000 of 100000 bytes") {
		t.Errorf("stalled HTTP upload at drain: %s", b)
	}
	if end := <-grpcEnd; end == "closed" {
		t.Errorf("stalled gRPC message at drain: connection closed without ending the stream")
	}
	g.release(1)
	if r := <-accepted; r.status != http.StatusOK {
		t.Errorf("accepted request: %d %s", r.status, trim(r.body))
	}
	if err := <-h.done; err != nil {
		t.Errorf("Run after a drain with stalled uploads: %v, want nil", err)
	}
	h.done <- nil
	if n := testutil.ToFloat64(h.s.metrics.uploadBytes); n != 0 {
		t.Errorf("upload budget still holds %g bytes", n)
	}
}

// TestStalledBodyTimesOut: a body that stops arriving gets 408 (not 400)
// after ReadTimeout, and a gRPC message that stops arriving is cut; both
// give their reservations back.
func TestStalledBodyTimesOut(t *testing.T) {
	g := newGated(fakeInfo(), false)
	opts := DefaultOptions()
	opts.ReadTimeout = 300e6
	h := start(t, g, fakeInfo(), opts)
	h.waitReady(t)
	_, httpResp := stalledHTTP(t, h.base, 100000, 1000)
	grpcEnd := stalledGRPC(t, h.conn.Target(), 100000, 1000)
	resp := <-httpResp
	if resp == nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %v, want 408", resp)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "request body not received within 300ms: got 1000 of 100000 bytes") {
		t.Errorf("stalled body: %s", b)
	}
	if end := <-grpcEnd; end != "grpc-status "+strconv.Itoa(int(codes.Canceled)) && end != "rst" {
		t.Errorf("stalled gRPC message: stream ended with %q, want CANCELLED or a reset", end)
	}
	waitFor(t, "reservations returned", func() bool { return testutil.ToFloat64(h.s.metrics.uploadBytes) == 0 })
}

// TestUploadBudgetRefusesBeforeReading: with the budget held by a stalled
// upload, a new HTTP upload is refused with 429 and Retry-After before any of
// its body is sent, and a gRPC call with RESOURCE_EXHAUSTED and RetryInfo; a
// body that fits in what is left is served. Once the stalled client goes,
// gRPC calls are admitted again.
func TestUploadBudgetRefusesBeforeReading(t *testing.T) {
	g := newGated(fakeInfo(), false)
	opts := DefaultOptions()
	opts.MaxRequestBytes, opts.UploadBudget = 1<<20, 5<<19 // a gRPC call reserves 1 MiB
	h := start(t, g, fakeInfo(), opts)
	h.waitReady(t)
	stalled1, _ := stalledHTTP(t, h.base, 1<<20, 1000)
	stalled2, _ := stalledHTTP(t, h.base, 1<<20, 1000)
	waitFor(t, "the stalled uploads' reservations", func() bool { return testutil.ToFloat64(h.s.metrics.uploadBytes) == 2<<20 })

	_, refused := stalledHTTP(t, h.base, 1<<20, 0)
	resp := <-refused
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upload over the budget: %v, want 429 with Retry-After", resp)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "upload budget full: this request needs 1048576 bytes, 2097152 of 2621440 are held") {
		t.Errorf("429 body: %s", b)
	}
	small := &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 320)}}}
	_, err := h.grpc.Encode(context.Background(), small)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || len(st.Details()) == 0 || !strings.Contains(st.Message(), "upload budget full") {
		t.Errorf("gRPC call over the budget: %v, want RESOURCE_EXHAUSTED with RetryInfo", err)
	} else if _, ok := st.Details()[0].(*errdetails.RetryInfo); !ok {
		t.Errorf("gRPC refusal details %v, want RetryInfo", st.Details())
	}
	if r := h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 10, 1), ""); r.status != http.StatusOK {
		t.Errorf("small upload within the budget: %d %s", r.status, trim(r.body))
	}
	stalled1.Close()
	stalled2.Close()
	waitFor(t, "the stalled uploads' reservations returned", func() bool { return testutil.ToFloat64(h.s.metrics.uploadBytes) == 0 })
	if _, err := h.grpc.Encode(context.Background(), small); err != nil {
		t.Errorf("gRPC call after the budget freed: %v", err)
	}
	waitFor(t, "the gRPC call's reservation returned", func() bool { return testutil.ToFloat64(h.s.metrics.uploadBytes) == 0 })
}

// TestUnreadyKeepsServing: the first step of a shutdown fails readiness and
// gRPC health while requests are still served, so endpoints can drain.
func TestUnreadyKeepsServing(t *testing.T) {
	g := newGated(fakeInfo(), false)
	h := start(t, g, fakeInfo(), DefaultOptions())
	h.waitReady(t)
	h.s.Unready()
	resp, err := http.Get(h.base + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz after Unready: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	hr, err := healthpb.NewHealthClient(h.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health after Unready: %v %v, want NOT_SERVING", hr, err)
	}
	if r := h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 10, 1), ""); r.status != http.StatusOK {
		t.Errorf("request while unready: %d %s, want it served", r.status, trim(r.body))
	}
}

// bigInfo is a model shape whose hidden states (1500 × 512 float32, 3 MB a
// window) are larger than what socket buffers absorb in a few windows.
func bigInfo() Info {
	i := fakeInfo()
	i.DModel = 512
	return i
}

// TestStalledReadersCutAtWriteTimeout: clients that stop reading their
// responses (an HTTP client that reads only the headers, a gRPC client that
// grants the server a 1 KB flow-control window) are cut after WriteTimeout,
// so they hold neither the server nor its drain: Run returns nil.
func TestStalledReadersCutAtWriteTimeout(t *testing.T) {
	g := newGated(bigInfo(), false)
	opts := DefaultOptions()
	opts.WriteTimeout = 300e6
	h := start(t, g, bigInfo(), opts)
	h.waitReady(t)
	long := audio.EncodeWAV16(audio.Clip{Rate: 16000, Channels: 1, Samples: make([]float32, 16000*100)}) // 4 windows, 12 MB out

	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n\r\n", len(long))
	if _, err := conn.Write(long); err != nil {
		t.Fatal(err)
	}
	// Read nothing: the response fills the socket buffers and the server's
	// write blocks until its deadline.

	grpcEnd := stalledReaderGRPC(t, h.conn.Target(), &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_Audio{Audio: &encoderv1.Audio{Data: long}}})
	waitFor(t, "both requests to finish on the server", func() bool {
		var stream float64
		for _, c := range []string{"OK", "Canceled", "DeadlineExceeded", "Unavailable", "Internal", "Unknown"} {
			stream += h.requests("EncodeStream", c)
		}
		return h.requests("http_encode", "OK") == 1 && stream == 1
	})
	if n := h.requests("EncodeStream", "Canceled"); n != 1 {
		t.Errorf("EncodeStream to a client that does not read: %g cancelled, want 1", n)
	}
	h.stop()
	if err := <-h.done; err != nil {
		t.Errorf("Run with clients that stopped reading: %v, want nil", err)
	}
	h.done <- nil
	<-grpcEnd // the stream or its connection was ended
}

// stalledReaderGRPC sends a whole EncodeStream request over a raw HTTP/2
// connection whose flow-control window lets the server send only 1 KB, and
// never reads more. The channel receives how the stream ended.
func stalledReaderGRPC(t *testing.T, addr string, req *encoderv1.EncodeRequest) <-chan string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", encoderv1.Encoder_EncodeStream_FullMethodName},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(msg[1:], uint32(len(body)))
	copy(msg[5:], body)
	if err := errorsJoin(fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1024}),
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})); err != nil {
		t.Fatal(err)
	}
	// The server's initial windows are 64 KB: send the message as the
	// server opens them, reading its frames meanwhile.
	end := make(chan string, 1)
	var once sync.Once
	report := func(how string) { once.Do(func() { end <- how }) } // then keep reading, as a live client does
	go func() {
		dec := hpack.NewDecoder(4096, nil)
		sent := 0
		window, connWindow := 65535, 65535
		for {
			for sent < len(msg) && window > 0 && connWindow > 0 {
				n := min(window, connWindow, len(msg)-sent, 16384)
				connWindow -= n
				if err := fr.WriteData(1, sent+n == len(msg), msg[sent:sent+n]); err != nil {
					report("closed")
					return
				}
				sent += n
				window -= n
			}
			f, err := fr.ReadFrame()
			if err != nil {
				report("closed")
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = fr.WritePing(true, f.Data)
				}
			case *http2.WindowUpdateFrame:
				switch f.StreamID {
				case 0:
					connWindow += int(f.Increment)
				case 1:
					window += int(f.Increment)
				}
			case *http2.RSTStreamFrame:
				report("rst")
			case *http2.HeadersFrame:
				fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
				for _, hf := range fields {
					if hf.Name == "grpc-status" {
						report("grpc-status " + hf.Value)
					}
				}
			}
		}
	}()
	return end
}
