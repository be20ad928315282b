package convert

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/download"
)

// A hub serving the external-data fixture: hf:// sources download the model
// and its data file next to it, stage to the same key as the local files,
// and leave no download behind.
func TestStageFromHub(t *testing.T) {
	var requests atomic.Int32
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		name, ok := strings.CutPrefix(r.URL.Path, "/org/repo/resolve/v2/onnx/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(models, name))
	}))
	defer hub.Close()
	local := stageFixture(t, "tiny-op14-external.onnx", "")
	cache := t.TempDir()
	r, err := Stage(context.Background(), Options{
		Source: "hf://org/repo/onnx/tiny-op14-external.onnx@v2", CacheDir: cache, Logger: quiet, NoSync: true,
		Download: download.Options{HFEndpoint: hub.URL, Logger: quiet},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Key != local.Key || requests.Load() != 2 {
		t.Errorf("key %s after %d requests, want %s after 2 (model and data)", r.Key, requests.Load(), local.Key)
	}
	if got := cacheEntries(t, cache); len(got) != 1 || got[0] != r.Key {
		t.Errorf("cache holds %v", got)
	}
	// a wrong --sha256 fails and keeps nothing
	other := t.TempDir()
	_, err = Stage(context.Background(), Options{
		Source: hub.URL + "/org/repo/resolve/v2/onnx/tiny-op14.onnx", SHA256: strings.Repeat("1", 64),
		CacheDir: other, Logger: quiet, NoSync: true, Download: download.Options{Logger: quiet},
	})
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Errorf("wrong sha256: %v", err)
	}
	if got := cacheEntries(t, other); len(got) != 0 {
		t.Errorf("cache holds %v after a sha256 mismatch", got)
	}
}

func TestSourceName(t *testing.T) {
	for in, want := range map[string]string{
		"hf://org/repo/onnx/encoder_model.onnx@refs/pr/1": "encoder_model.onnx",
		"https://user@example.com/m/encoder.onnx?sig=a@b": "encoder.onnx",
		"https://example.com/":                            "model.onnx",
		"https://example.com/..":                          "model.onnx",
	} {
		if got := sourceName(in); got != want {
			t.Errorf("sourceName(%q) = %q, want %q", in, got, want)
		}
	}
}
