package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	contract "github.com/xdna-whisper/xdna-whisper/api/report"
)

// runCaptured runs the command and returns its exit code, stdout and stderr.
func runCaptured(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	out, _ := os.Create(filepath.Join(dir, "stdout"))
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	code := run(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	out.Close()
	errf.Close()
	o, _ := os.ReadFile(filepath.Join(dir, "stdout"))
	e, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	return code, string(o), string(e)
}

// The stager refuses denied hosts and oversized files, and its result file
// (the staging pod's termination message, copied into the WhisperEncoder's
// status) and logs never show a signed URL's signature.
func TestStageRefusalsKeepSecrets(t *testing.T) {
	const planted = "PLANTEDsig0123456789abcdef"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(stageModels, "tiny-op14.onnx"))
	}))
	defer srv.Close()
	src := srv.URL + "/tiny-op14.onnx?X-Amz-Signature=" + planted
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"denied host", []string{"--deny-hosts", "10.0.0.0/8, 127.0.0.0/8"}, "refused by the staging host policy (denied by 127.0.0.0/8)"},
		{"allow list", []string{"--allow-hosts", "mirror.example"}, "refused by the staging host policy (not in the allow list)"},
		{"size cap", []string{"--max-download-bytes", "1000"}, "file larger than the 1000-byte cap"},
		{"digest", []string{"--sha256", strings.Repeat("ab", 32)}, "expected sha256 " + strings.Repeat("ab", 32) + ", the download did not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			rf := filepath.Join(t.TempDir(), "result")
			args := append([]string{"stage", "--cache", cache, "--result-file", rf, "--source", src}, tc.flags...)
			code, stdout, stderr := runCaptured(t, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			b, _ := os.ReadFile(rf)
			var s contract.StageResult
			if err := json.Unmarshal(b, &s); err != nil || !strings.Contains(s.Error, tc.want) {
				t.Fatalf("result file %s (%v), want an error containing %q", b, err, tc.want)
			}
			for what, text := range map[string]string{"result file": string(b), "stdout": stdout, "stderr": stderr} {
				if strings.Contains(text, planted) {
					t.Errorf("%s shows the signature:\n%s", what, text)
				}
			}
			if es, _ := os.ReadDir(cache); len(es) != 0 {
				t.Errorf("cache holds %d entries after a refusal", len(es))
			}
		})
	}
	code, _, stderr := runCaptured(t, "stage", "--cache", t.TempDir(), "--source", src, "--deny-hosts", "10.0.0.0/99")
	if code != 1 || !strings.Contains(stderr, `host rule "10.0.0.0/99"`) {
		t.Errorf("bad rule: exit %d, stderr %s", code, stderr)
	}
}

// The serve command's lock-down flags fail early and clearly when half set.
func TestServeSecurityFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "/nonexistent/tls.crt"}, "want both a certificate and a key file"},
		{[]string{"--tls-cert", "/nonexistent/tls.crt", "--tls-key", "/nonexistent/tls.key"}, "/nonexistent/tls.crt"},
		{[]string{"--auth-token-file", "/nonexistent/tokens"}, "/nonexistent/tokens"},
		{[]string{"--auth-metrics"}, "--auth-metrics needs --auth-token-file"},
	} {
		err := runServe(t.Context(), append([]string{"--weights", t.TempDir(), "--termination-log", filepath.Join(t.TempDir(), "t")}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
