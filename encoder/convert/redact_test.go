package convert

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/download"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

const planted = "PLANTEDsig0123456789abcdef"

// A signed source URL's signature reaches neither the manifest nor the logs
// nor any error: it is served (/v1/model) and copied into status.
func TestSignedSourceRedacted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("X-Amz-Signature") != planted {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		http.ServeFile(w, r, filepath.Join(models, strings.TrimPrefix(r.URL.Path, "/")))
	}))
	defer srv.Close()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	src := srv.URL + "/tiny-op14-fp16.onnx?X-Amz-Credential=AKIA&X-Amz-Signature=" + planted
	cache := t.TempDir()
	r, err := Stage(context.Background(), Options{Source: src, CacheDir: cache, Logger: logger, NoSync: true,
		Download: download.Options{Logger: logger}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := staged.Open(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got, want := m.Manifest().Source, srv.URL+"/tiny-op14-fp16.onnx?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"; got != want {
		t.Errorf("manifest source = %q, want %q", got, want)
	}
	raw, err := os.ReadFile(filepath.Join(r.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	// failures: a mismatching digest, a missing file, a refused host
	var errs []string
	for _, s := range []string{src, srv.URL + "/missing.onnx?X-Amz-Signature=" + planted} {
		_, err := Stage(context.Background(), Options{Source: s, SHA256: strings.Repeat("1", 64), CacheDir: t.TempDir(),
			Logger: logger, NoSync: true, Download: download.Options{Logger: logger, Attempts: 1}})
		if err == nil {
			t.Fatalf("staging %s with a wrong digest succeeded", s)
		}
		errs = append(errs, err.Error())
	}
	_, err = Stage(context.Background(), Options{Source: src, CacheDir: t.TempDir(), Logger: logger, NoSync: true,
		Download: download.Options{Logger: logger, Policy: &download.Policy{Deny: []string{"127.0.0.0/8"}}}})
	if err == nil {
		t.Fatal("a denied host was staged")
	}
	errs = append(errs, err.Error())
	for what, s := range map[string]string{"manifest": string(raw), "logs": logs.String(), "errors": strings.Join(errs, "\n")} {
		if strings.Contains(s, planted) {
			t.Errorf("%s show the signature:\n%s", what, s)
		}
	}
	if !strings.Contains(errs[0], "expected sha256 "+strings.Repeat("1", 64)+", the download did not match") {
		t.Errorf("mismatch error = %s", errs[0])
	}
}

// An unpinned URL whose body is not ONNX gets an error that quotes nothing of the body.
func TestNonONNXBodyNotShown(t *testing.T) {
	body := []byte("\x08\xb9\x60internal-secret-document: account 4242\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	_, err := Stage(context.Background(), Options{Source: srv.URL + "/m.onnx", CacheDir: t.TempDir(), Logger: quiet, NoSync: true,
		Download: download.Options{Logger: quiet}})
	if err == nil || !strings.Contains(err.Error(), "not a valid ONNX model") {
		t.Fatalf("error = %v, want not a valid ONNX model", err)
	}
	for _, leak := range []string{"12345", "internal", "4242", "ir_version", "field"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q reveals %q of the body", err, leak)
		}
	}
}
