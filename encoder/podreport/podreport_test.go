package podreport

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdna-whisper/xdna-whisper/api/report"
)

// apiServer records the patches a Reporter sends, answering like the pods endpoint.
type apiServer struct {
	mu      sync.Mutex
	patches []report.Progress
	status  int
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) { http.Error(w, msg, code) }
	switch {
	case r.Method != http.MethodPatch:
		fail(http.StatusMethodNotAllowed, "want PATCH, got "+r.Method)
		return
	case r.URL.Path != "/api/v1/namespaces/ml/pods/stage-abc":
		fail(http.StatusNotFound, "path "+r.URL.Path)
		return
	case r.Header.Get("Content-Type") != "application/merge-patch+json":
		fail(http.StatusUnsupportedMediaType, "content type "+r.Header.Get("Content-Type"))
		return
	case r.Header.Get("Authorization") != "Bearer tok":
		fail(http.StatusUnauthorized, "token")
		return
	}
	var body struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil || len(body.Metadata.Annotations) != 1 || strings.Contains(string(b), `"spec"`) {
		fail(http.StatusBadRequest, "want a merge patch of one annotation, got "+string(b))
		return
	}
	p, ok := report.ParseProgress(body.Metadata.Annotations[report.ProgressAnnotation])
	if !ok {
		fail(http.StatusBadRequest, "annotation "+string(b))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != 0 {
		fail(s.status, `{"kind":"Status","message":"pods \"stage-abc\" is forbidden"}`)
		return
	}
	s.patches = append(s.patches, p)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"kind":"Pod"}`))
}

func (s *apiServer) got() []report.Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]report.Progress(nil), s.patches...)
}

func TestReporterSendsLatestAndFinal(t *testing.T) {
	api := &apiServer{}
	srv := httptest.NewTLSServer(api)
	defer srv.Close()
	r, err := New(srv.URL, "ml", "stage-abc", "tok", srv.Client(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r.Report(report.Progress{Phase: "download", BytesDone: 1, BytesTotal: 100})
	deadline := time.Now().Add(5 * time.Second)
	for len(api.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Within the interval only the latest report survives, and Close sends it.
	for i := int64(2); i <= 100; i++ {
		r.Report(report.Progress{Phase: "download", BytesDone: i, BytesTotal: 100})
	}
	r.Report(report.Progress{Phase: "convert", BytesDone: 7, BytesTotal: 9})
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := []report.Progress{{Phase: "download", BytesDone: 1, BytesTotal: 100}, {Phase: "convert", BytesDone: 7, BytesTotal: 9}}
	if diff := cmp.Diff(want, api.got()); diff != "" {
		t.Errorf("patches (-want +got):\n%s", diff)
	}
}

func TestReporterErrors(t *testing.T) {
	api := &apiServer{status: http.StatusForbidden}
	srv := httptest.NewTLSServer(api)
	defer srv.Close()
	r, err := New(srv.URL, "ml", "stage-abc", "tok", srv.Client(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	r.Report(report.Progress{Phase: "download", BytesDone: 1, BytesTotal: 2})
	err = r.Close()
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden") || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("Close after a refused patch = %v, want the 403 and the API server's message", err)
	}

	for _, tt := range []struct{ url, ns, pod, want string }{
		{"ftp://x", "ml", "p", "want https://HOST[:PORT]"},
		{"https://x", "", "p", "want both set"},
		{"https://x", "ml", "", "want both set"},
	} {
		if _, err := New(tt.url, tt.ns, tt.pod, "", http.DefaultClient, time.Second); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %q, %q) = %v, want %q", tt.url, tt.ns, tt.pod, err, tt.want)
		}
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := InCluster("p"); err == nil || !strings.Contains(err.Error(), "not running in a Kubernetes pod") {
		t.Errorf("InCluster outside a pod = %v", err)
	}
}
