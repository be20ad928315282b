package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	contract "github.com/xdna-whisper/xdna-whisper/api/report"
	"github.com/xdna-whisper/xdna-whisper/encoder/client"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
)

// TestServeBackendNPUFailsLoudly: this build has no NPU backend, so --backend
// npu must exit non-zero saying so, also in the termination log the operator
// reads — never a silent CPU run.
func TestServeBackendNPUFailsLoudly(t *testing.T) {
	term := filepath.Join(t.TempDir(), "termination-log")
	err := runServe(context.Background(), []string{"--weights", t.TempDir(), "--backend", "npu", "--termination-log", term})
	if err == nil || !strings.Contains(err.Error(), "the NPU backend is not available in this build") {
		t.Fatalf("err = %v", err)
	}
	msg, rerr := os.ReadFile(term)
	got := contract.ParseTermination(string(msg))
	if rerr != nil || got.Reason != contract.CodeNPUUnavailable || !strings.Contains(got.Message, "NPU backend is not available in this build") || !strings.Contains(got.Message, "/dev/accel") {
		t.Errorf("termination log %q (%+v), %v: want reason %s", msg, got, rerr, contract.CodeNPUUnavailable)
	}
	if err := runServe(context.Background(), []string{"--weights", t.TempDir(), "--backend", "cpu", "--termination-log", term}); err == nil {
		t.Error("serving an empty weights directory succeeded")
	} else if msg, _ := os.ReadFile(term); contract.ParseTermination(string(msg)).Reason != contract.CodeModelLoadFailed {
		t.Errorf("termination log %q after a load failure: want reason %s", msg, contract.CodeModelLoadFailed)
	}
	var ue usageError
	if err := runServe(context.Background(), []string{"--weights", "x", "--backend", "gpu", "--termination-log", term}); !errors.As(err, &ue) {
		t.Errorf("--backend gpu: %v, want a usage error", err)
	}
}

// stageBundled stages the bundled demo model into dir and returns the staged directory.
func stageBundled(t *testing.T, dir string) string {
	t.Helper()
	weights, err := converttest.Demo(dir)
	if err != nil {
		t.Fatal(err)
	}
	return weights
}

// servedProcess is `whisper-encoder serve` running as its own process.
type servedProcess struct {
	cmd            *exec.Cmd
	httpURL, gAddr string
	logs           chan map[string]any // every JSON log line
	exited         chan error
}

// startServe builds the binary and starts serve on loopback ports chosen by the kernel.
func startServe(t *testing.T, weights string, extra ...string) *servedProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "whisper-encoder")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	args := append([]string{"serve", "--weights", weights, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--log-level", "debug", "--termination-log", filepath.Join(t.TempDir(), "term")}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &servedProcess{cmd: cmd, logs: make(chan map[string]any, 1<<16), exited: make(chan error, 1)}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			if line["msg"] == "serving" {
				addrs <- [2]string{line["http"].(string), line["grpc"].(string)}
			}
			p.logs <- line
		}
		close(p.logs)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case a := <-addrs:
		p.httpURL, p.gAddr = "http://"+a[0], a[1]
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not start listening within 2 minutes")
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(p.httpURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("serve not ready within a minute")
		}
	}
	return p
}

// notAccepted reports whether a failed request was refused before the server
// took it on (so it is not lost): the connection was refused, or the server
// said it is shutting down or full.
func notAccepted(err error) bool {
	var he *client.HTTPError
	if errors.As(err, &he) {
		return he.Status == http.StatusServiceUnavailable || he.Status == http.StatusTooManyRequests
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable:
		// UNAVAILABLE is what gRPC reports both for "shutting down" from our
		// server and for a refused connection or a GOAWAY before the RPC was
		// sent: none of them was accepted.
		return true
	case codes.ResourceExhausted:
		return true
	}
	return false
}

// TestServeSIGTERMMidLoadLosesNothing runs the real binary under load over
// both transports (HTTP, gRPC Encode, gRPC EncodeStream), sends SIGTERM in
// the middle, and counts by request id: every request the server accepted
// (logged with any outcome) was answered in full and received by its client,
// none was failed for the shutdown after being accepted, and the process
// drains and exits 0.
func TestServeSIGTERMMidLoadLosesNothing(t *testing.T) {
	weights := stageBundled(t, t.TempDir())
	p := startServe(t, weights, "--max-queue", "64", "--drain-timeout", "2m")
	wav, err := os.ReadFile("../../encoder/bundled/speech_22k.wav")
	if err != nil {
		t.Fatal(err)
	}
	gc, err := client.Dial(p.gAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	hc := &client.HTTP{Base: p.httpURL}
	request := func(id string) *encoderv1.EncodeRequest {
		r := client.AudioRequest(wav, encoderv1.AudioFormat_AUDIO_FORMAT_WAV, 0)
		r.RequestId = id
		return r
	}
	sends := []func(ctx context.Context, id string) error{
		func(ctx context.Context, id string) error {
			_, err := hc.EncodeID(ctx, id, wav, "audio/wav")
			return err
		},
		func(ctx context.Context, id string) error { _, err := gc.Encode(ctx, request(id)); return err },
		func(ctx context.Context, id string) error {
			return gc.EncodeStream(ctx, request(id), func(client.Window) error { return nil })
		},
	}

	var (
		mu      sync.Mutex
		outcome = map[string]error{} // by request id, what the client saw
		okCount atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := sends[i%len(sends)]
			for n := 0; n < 300 && !stop.Load(); n++ { // bounded loop
				id := client.NewRequestID()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				err := send(ctx, id)
				cancel()
				mu.Lock()
				outcome[id] = err
				mu.Unlock()
				if err == nil {
					okCount.Add(1)
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for deadline := time.Now().Add(3 * time.Minute); okCount.Load() < 10; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) { // mid-load: some requests done, more in flight
			stop.Store(true)
			t.Fatalf("only %d requests answered in 3 minutes", okCount.Load())
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	serverSaw := map[string]string{} // request id → code the server logged
	var drained, autoWarned bool
	uploadsCut := 0 // gRPC calls whose message was still arriving when the drain began
	for line := range p.logs {
		if line["msg"] == "draining" {
			if n, ok := line["uploads_cut"].(float64); ok {
				uploadsCut = int(n)
			}
		}
		if line["msg"] == "request" {
			serverSaw[line["request_id"].(string)] = line["code"].(string)
		}
		if line["msg"] == "drained" {
			drained = true
		}
		if line["level"] == "WARN" && strings.HasPrefix(line["msg"].(string), "backend auto: the NPU backend is not available") {
			autoWarned = true
		}
	}
	exitErr := <-p.exited
	stop.Store(true)
	wg.Wait()

	var accepted, answered, refused, neverArrived, cut int
	for id, err := range outcome {
		code, seen := serverSaw[id]
		switch {
		case !seen && err == nil:
			t.Errorf("request %s: client got an answer the server never logged", id)
		case !seen && (notAccepted(err) || errors.Is(err, syscall.ECONNRESET)):
			// Connection refused after the listeners closed, or reset while
			// waiting in the closed listener's accept backlog: the server never
			// took these requests (it logs every request it reads).
			neverArrived++
		case !seen && status.Code(err) == codes.Canceled:
			// Its message was still arriving when the drain began: the server
			// cut it (never accepted; counted against the server's own log).
			cut++
		case !seen:
			t.Errorf("request %s: failed without reaching the server: %v", id, err)
		case code == "Unavailable" || code == "ResourceExhausted":
			refused++
			if !notAccepted(err) {
				t.Errorf("request %s: server refused it (%s) but the client saw %v", id, code, err)
			}
		default:
			accepted++
			if code != "OK" || err != nil {
				t.Errorf("accepted request %s lost: server %s, client %v", id, code, err)
			} else {
				answered++
			}
		}
	}
	t.Logf("%d requests: %d accepted and %d of them answered; %d refused while draining; %d cut while uploading; %d found the listeners closed",
		len(outcome), accepted, answered, refused, cut, neverArrived)
	if cut > uploadsCut {
		t.Errorf("%d requests ended CANCELLED without reaching the server, but the drain cut only %d uploads", cut, uploadsCut)
	}
	if exitErr != nil {
		t.Errorf("serve exit: %v, want status 0", exitErr)
	}
	if !drained {
		t.Error("serve did not log a completed drain")
	}
	if !autoWarned {
		t.Error("--backend auto (the default) did not warn that it runs on the CPU")
	}
	if accepted < 10 {
		t.Errorf("only %d requests accepted: the test did not load the server", accepted)
	}
}
