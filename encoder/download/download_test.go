package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func payload(n int) ([]byte, string) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:])
}

// serveRange serves body honoring "Range: bytes=N-".
func serveRange(w http.ResponseWriter, r *http.Request, body []byte) {
	start := 0
	if rg := r.Header.Get("Range"); rg != "" {
		start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(body)-1, len(body)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.Write(body[start:])
}

func opts() Options {
	return Options{Logger: quiet, Backoff: 5 * time.Millisecond, StallTimeout: 2 * time.Second}
}

func fetch(t *testing.T, url string, o Options) (Result, string, error) {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, "model.onnx")
	r, err := File(context.Background(), url, dst, o)
	return r, dir, err
}

func checkOnly(t *testing.T, dir string, want ...string) {
	t.Helper()
	es, _ := os.ReadDir(dir)
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("folder holds %v, want %v", got, want)
	}
}

func TestDownloadVerifies(t *testing.T) {
	body, sum := payload(3 << 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveRange(w, r, body) }))
	defer srv.Close()
	o := opts()
	o.SHA256 = strings.ToUpper(sum)
	var last atomic.Int64
	o.Progress = func(done, total int64) {
		if total != int64(len(body)) {
			t.Errorf("progress total %d, want %d", total, len(body))
		}
		last.Store(done)
	}
	r, dir, err := fetch(t, srv.URL+"/m.onnx", o)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(r.Path)
	if r.SHA256 != sum || r.Size != int64(len(body)) || !bytes.Equal(got, body) || last.Load() != int64(len(body)) {
		t.Errorf("result %+v, progress %d", r, last.Load())
	}
	checkOnly(t, dir, "model.onnx")
}

func TestSHA256MismatchKeepsNothing(t *testing.T) {
	body, _ := payload(100000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveRange(w, r, body) }))
	defer srv.Close()
	o := opts()
	o.SHA256 = strings.Repeat("0", 64)
	_, dir, err := fetch(t, srv.URL+"/m.onnx", o)
	if err == nil || err.Error() != "download "+srv.URL+"/m.onnx: sha256 mismatch: expected sha256 "+strings.Repeat("0", 64)+", the download did not match" {
		t.Fatalf("error = %v", err)
	}
	// No oracle: nothing about what the server sent (digest, size).
	if _, sum := payload(100000); strings.Contains(err.Error(), sum) || strings.Contains(err.Error(), "100000") {
		t.Errorf("the mismatch error reveals the body: %v", err)
	}
	checkOnly(t, dir)
}

// A server that stops sending mid-way: the attempt is abandoned after the
// stall timeout and the next one resumes with a Range request.
func TestStallResumes(t *testing.T) {
	body, sum := payload(1 << 20)
	var calls atomic.Int32
	var ranges sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		ranges.Store(n, r.Header.Get("Range"))
		if n == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:300000])
			w.(http.Flusher).Flush()
			select { // stall until the client gives up
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		serveRange(w, r, body)
	}))
	defer srv.Close()
	o := opts()
	o.SHA256 = sum
	o.StallTimeout = 200 * time.Millisecond
	start := time.Now()
	r, _, err := fetch(t, srv.URL+"/m.onnx", o)
	if err != nil {
		t.Fatal(err)
	}
	if r.SHA256 != sum || calls.Load() != 2 {
		t.Errorf("sha %s after %d requests", r.SHA256, calls.Load())
	}
	if rg, _ := ranges.Load(int32(2)); rg != "bytes=300000-" {
		t.Errorf("second request Range = %q, want bytes=300000-", rg)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("stall not detected quickly: %v", time.Since(start))
	}
}

// A connection cut mid-body is retried and resumed; a server that ignores
// Range is restarted from zero.
func TestDropResumesOrRestarts(t *testing.T) {
	for _, honorRange := range []bool{true, false} {
		t.Run(fmt.Sprintf("range=%v", honorRange), func(t *testing.T) {
			body, sum := payload(500000)
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					w.Write(body[:123456])
					w.(http.Flusher).Flush()
					conn, _, _ := w.(http.Hijacker).Hijack()
					conn.Close()
					return
				}
				if !honorRange {
					r.Header.Del("Range")
				}
				serveRange(w, r, body)
			}))
			defer srv.Close()
			o := opts()
			o.SHA256 = sum
			r, _, err := fetch(t, srv.URL+"/m.onnx", o)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(r.Path); !bytes.Equal(got, body) || calls.Load() != 2 {
				t.Errorf("content differs or %d requests", calls.Load())
			}
		})
	}
}

func TestRetriesTransientAndStopsOnPermanent(t *testing.T) {
	body, sum := payload(1000)
	tests := []struct {
		name      string
		fail      int // requests answered 503 first
		status    int // then this status (0: the body)
		wantCalls int32
		wantErr   string
	}{
		{"503 twice", 2, 0, 3, ""},
		{"404", 0, http.StatusNotFound, 1, "HTTP 404"},
		{"401", 0, http.StatusUnauthorized, 1, "set HF_TOKEN"},
		{"always 503", 100, 0, 4, "giving up after 4 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				switch {
				case n <= tt.fail:
					http.Error(w, "busy", http.StatusServiceUnavailable)
				case tt.status != 0:
					http.Error(w, "no", tt.status)
				default:
					serveRange(w, r, body)
				}
			}))
			defer srv.Close()
			o := opts()
			o.Attempts = 4
			o.SHA256 = sum
			_, dir, err := fetch(t, srv.URL+"/m.onnx", o)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			if calls.Load() != tt.wantCalls {
				t.Errorf("%d requests, want %d", calls.Load(), tt.wantCalls)
			}
			if tt.wantErr != "" {
				checkOnly(t, dir)
			}
		})
	}
}

// HF_TOKEN goes to the hub and never to the host it redirects to, nor to
// other hosts.
func TestTokenOnlyToHuggingFace(t *testing.T) {
	body, _ := payload(1000)
	var cdnAuth, otherAuth atomic.Value
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnAuth.Store(r.Header.Get("Authorization"))
		serveRange(w, r, body)
	}))
	defer cdn.Close()
	var hubAuth, hubPath atomic.Value
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hubAuth.Store(r.Header.Get("Authorization"))
		hubPath.Store(r.URL.Path)
		http.Redirect(w, r, cdn.URL+"/blob?sig=secret", http.StatusFound)
	}))
	defer hub.Close()
	o := opts()
	o.Token = "hf_secret"
	o.HFEndpoint = hub.URL
	if _, _, err := fetch(t, "hf://openai/whisper-base/onnx/encoder_model.onnx@v1.0", o); err != nil {
		t.Fatal(err)
	}
	if hubAuth.Load() != "Bearer hf_secret" {
		t.Errorf("hub got Authorization %q", hubAuth.Load())
	}
	if hubPath.Load() != "/openai/whisper-base/resolve/v1.0/onnx/encoder_model.onnx" {
		t.Errorf("hub path %q", hubPath.Load())
	}
	if cdnAuth.Load() != "" {
		t.Errorf("redirect target got Authorization %q", cdnAuth.Load())
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth.Store(r.Header.Get("Authorization"))
		serveRange(w, r, body)
	}))
	defer other.Close()
	if _, _, err := fetch(t, other.URL+"/m.onnx", o); err != nil {
		t.Fatal(err)
	}
	if otherAuth.Load() != "" {
		t.Errorf("a non-HF host got Authorization %q", otherAuth.Load())
	}
}

func TestResolveHF(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"hf://openai/whisper-base/encoder.onnx", "https://huggingface.co/openai/whisper-base/resolve/main/encoder.onnx", ""},
		{"hf://o/r/a/b c.onnx@refs/pr/1", "https://huggingface.co/o/r/resolve/refs%2Fpr%2F1/a/b%20c.onnx", ""},
		{"hf://o/r", "", "want hf://ORG/REPO/PATH"},
		{"hf://o/r/p@", "", "want hf://ORG/REPO/PATH"},
	}
	for _, tt := range tests {
		got, err := ResolveHF(tt.in, "")
		if got != tt.want || (tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err))) {
			t.Errorf("ResolveHF(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
	for host, want := range map[string]bool{"huggingface.co": true, "cdn-lfs.huggingface.co": true, "cas-bridge.xethub.hf.co": true, "evilhuggingface.co": false, "example.com": false} {
		if IsHFHost(host, "") != want {
			t.Errorf("IsHFHost(%q) = %v", host, !want)
		}
	}
}

func TestCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	o := opts()
	o.Backoff = time.Hour
	dir := t.TempDir()
	_, err := File(ctx, srv.URL+"/m.onnx", filepath.Join(dir, "m.onnx"), o)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Errorf("error = %v", err)
	}
	checkOnly(t, dir)
}

func TestReporterLogs(t *testing.T) {
	var buf bytes.Buffer
	r := &Reporter{Label: "download", Logger: slog.New(slog.NewTextHandler(&buf, nil)), Interval: time.Hour}
	r.Update(10, 100)
	r.Update(100, 100)
	r.Finish()
	if n := strings.Count(buf.String(), "download progress"); n != 1 || !strings.Contains(buf.String(), "bytes=100 total=100") {
		t.Errorf("log = %q", buf.String())
	}
	var bar bytes.Buffer
	tty := &Reporter{Label: "convert", TTY: true, W: &bar, Interval: time.Nanosecond}
	tty.Update(50, 100)
	tty.Finish()
	if !strings.Contains(bar.String(), "[===============               ]") || !strings.Contains(bar.String(), "50%") {
		t.Errorf("bar = %q", bar.String())
	}
}
