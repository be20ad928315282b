package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio/audiotest"
	"github.com/xdna-whisper/xdna-whisper/encoder/client"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
)

// vmHWM is a process's peak resident set (VmHWM in /proc/PID/status), in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc/%d/status (%v): peak RSS cannot be read on this system", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// noiseWAV is a 16 kHz mono PCM16 WAV of seconds of noise.
func noiseWAV(seconds float64, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	s := make([]float32, int(seconds*16000))
	for i := range s {
		s[i] = float32(r.NormFloat64() * 0.1)
	}
	return audio.EncodeWAV16(audio.Clip{Rate: 16000, Channels: 1, Samples: s})
}

// TestServePeakRSSUnderHostileMix runs the real binary under a mix of what
// issue 13 threw at it, all at once: uploads that stall (cut by
// --read-timeout), more uploads than the upload budget holds, FLAC bombs (8
// channels × 96 kHz, 600 s refused and 60 s decoded), large gRPC streams,
// chunked uploads answered in JSON, NaN audio and absurd log-mels beside
// valid speech. The server's peak resident set (VmHWM, read from /proc)
// must stay under server.MemoryBound for its flags, and no request may fail
// with a server error.
func TestServePeakRSSUnderHostileMix(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the hostile mix takes about a minute")
	}
	weights := stageBundled(t, t.TempDir())
	opts := server.DefaultOptions()
	opts.MaxRequestBytes, opts.UploadBudget, opts.DecodeBudget = 8<<20, 64<<20, 96<<20
	opts.MaxConnections, opts.MaxQueue, opts.ReadTimeout = 64, 16, 3*time.Second
	p := startServe(t, weights, "--max-request-bytes", fmt.Sprint(opts.MaxRequestBytes), "--upload-budget", fmt.Sprint(opts.UploadBudget),
		"--decode-budget", fmt.Sprint(opts.DecodeBudget), "--max-connections", fmt.Sprint(opts.MaxConnections),
		"--max-queue", fmt.Sprint(opts.MaxQueue), "--read-timeout", opts.ReadTimeout.String(), "--drain-timeout", "2m", "--shutdown-delay", "0s")
	enc, err := model.Load(weights, model.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	packed := int64(enc.PackedBytes())
	enc.Close()
	info, err := server.InfoFor(weights, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	bound, _ := server.MemoryBound(opts, info, 2*packed)
	ready := vmHWM(t, p.cmd.Process.Pid)

	bomb60, err := audiotest.FLACBomb(96000, 8, 60)
	if err != nil {
		t.Fatal(err)
	}
	bomb600 := audiotest.WithFLACLength(bomb60, 600*96000) // FLACBomb(96000, 8, 600)'s header: refused from it
	bigWAV := noiseWAV(100, 1)                             // 3.2 MB, 4 windows
	speech, err := os.ReadFile("../../encoder/bundled/speech_22k.wav")
	if err != nil {
		t.Fatal(err)
	}
	nan := make([]float32, 16000)
	nan[100] = float32(math.NaN())
	nanWAV := audio.EncodeWAVFloat32(audio.Clip{Rate: 16000, Channels: 1, Samples: nan})
	var hugeMel bytes.Buffer
	huge := npy.Array{Shape: []int{80, 100}, Data: make([]float32, 8000)}
	for i := range huge.Data {
		huge.Data[i] = 3e38
	}
	if err := npy.Write(&hugeMel, huge); err != nil {
		t.Fatal(err)
	}
	gc, err := client.Dial(p.gAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()

	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		wg       sync.WaitGroup
	)
	note := func(kind string, status int) {
		mu.Lock()
		outcomes[fmt.Sprintf("%s %d", kind, status)]++
		mu.Unlock()
	}
	post := func(kind, contentType string, body io.Reader, length int64, accept string) {
		req, err := http.NewRequest(http.MethodPost, p.httpURL+"/v1/encode", body)
		if err != nil {
			t.Error(err)
			return
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			note(kind+" transport error", 0)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		note(kind, resp.StatusCode)
	}
	run := func(n int, f func(i int)) {
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); f(i) }()
		}
	}
	const rounds = 3
	run(4, func(int) { // stalled uploads: 6 of 8 MiB sent, then nothing (half the upload budget)
		for range rounds {
			conn, err := net.Dial("tcp", strings.TrimPrefix(p.httpURL, "http://"))
			if err != nil {
				note("stalled dial error", 0)
				continue
			}
			fmt.Fprintf(conn, "POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n\r\n", 8<<20)
			conn.Write(make([]byte, 6<<20))
			if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				note("stalled upload", resp.StatusCode)
			} else {
				note("stalled upload cut", 0)
			}
			conn.Close()
		}
	})
	run(4, func(i int) { // FLAC bombs
		for r := range rounds {
			b, kind := bomb60, "60 s bomb"
			if (i+r)%2 == 0 {
				b, kind = bomb600, "600 s bomb"
			}
			post(kind, "audio/flac", bytes.NewReader(b), int64(len(b)), "")
		}
	})
	run(4, func(int) { // 3.2 MB gRPC streams, retried when refused as a client following RetryInfo would
		for range rounds {
			var err error
			for range 50 {
				err = gc.EncodeStream(context.Background(), client.AudioRequest(bigWAV, encoderv1.AudioFormat_AUDIO_FORMAT_WAV, 0), func(client.Window) error { return nil })
				if status.Code(err) != codes.ResourceExhausted {
					break
				}
				time.Sleep(200 * time.Millisecond) // the client's backoff
			}
			note("grpc stream "+codeName(err), 0)
		}
	})
	run(2, func(int) { // chunked 3.2 MB uploads answered in JSON
		for range rounds {
			post("chunked json", "audio/wav", io.MultiReader(bytes.NewReader(bigWAV)), -1, "application/json")
		}
	})
	run(2, func(int) { // bad input beside valid speech
		for range rounds {
			post("nan wav", "audio/wav", bytes.NewReader(nanWAV), int64(len(nanWAV)), "")
			post("3e38 log-mel", server.ContentTypeNPY, bytes.NewReader(hugeMel.Bytes()), int64(hugeMel.Len()), "")
			post("speech", "audio/wav", bytes.NewReader(speech), int64(len(speech)), "")
		}
	})
	wg.Wait()
	peak := vmHWM(t, p.cmd.Process.Pid)

	var kinds []string
	for k, n := range outcomes {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		if strings.HasSuffix(k, " 500") || strings.Contains(k, "Internal") {
			t.Errorf("%s: server errors under the hostile mix", k)
		}
	}
	t.Logf("outcomes: %s", strings.Join(kinds, ", "))
	t.Logf("peak RSS %.1f MiB (%.1f MiB when ready); bound %.1f MiB (model %.1f MiB, upload %d MiB, decode %d MiB, %d connections)",
		mib(peak), mib(ready), mib(bound), mib(2*packed), opts.UploadBudget>>20, opts.DecodeBudget>>20, opts.MaxConnections)
	if peak > bound {
		t.Errorf("peak RSS %d bytes over the bound %d", peak, bound)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range p.logs {
	}
	if err := <-p.exited; err != nil {
		t.Errorf("serve exit after the mix: %v", err)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// codeName is a gRPC outcome's code name.
func codeName(err error) string { return status.Code(err).String() }
