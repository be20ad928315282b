package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bundled"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/server/servertest"
)

// serveInProcess runs the server on the staged bundled model on loopback.
func serveInProcess(t *testing.T) (httpURL, grpcAddr string) {
	t.Helper()
	return servertest.Start(t, stageBundled(t, t.TempDir()))
}

// TestEncodeRemote: `encode --server ADDR FILE` over HTTP and gRPC, for audio
// (a 45 s WAV: two windows) and a log-mel .npy.
func TestEncodeRemote(t *testing.T) {
	httpURL, grpcAddr := serveInProcess(t)
	tmp := t.TempDir()
	for _, tc := range []struct {
		addr, file string
		windows    int
	}{
		{httpURL, "../../encoder/bundled/speech_22k.wav", 1},
		{grpcAddr, "../../encoder/bundled/speech_22k.wav", 1},
		{grpcAddr, "../../testdata/mel/jfk_80.npy", 1},
		{httpURL, "../../testdata/mel/jfk_80.npy", 1},
		{grpcAddr, "../../../shared/data/whisper/jfk.flac", 1},
	} {
		t.Run(fmt.Sprintf("%s %s", tc.addr, filepath.Base(tc.file)), func(t *testing.T) {
			out := filepath.Join(tmp, "hidden.npy")
			os.Remove(out)
			if err := runEncode(context.Background(), []string{"--server", tc.addr, "--out", out, tc.file}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			a, err := npy.Read(bytes.NewReader(b), 0)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(a.Shape) != fmt.Sprintf("[%d 1500 64]", tc.windows) {
				t.Errorf("shape %v", a.Shape)
			}
		})
	}
	err := runEncode(context.Background(), []string{"--server", httpURL, "a.wav", "b.wav"})
	if _, ok := err.(usageError); !ok {
		t.Errorf("two files: %v, want a usage error", err)
	}
	if err := runEncode(context.Background(), []string{"--server", httpURL, "../../testdata/audio/missing.wav"}); err == nil {
		t.Error("missing file: no error")
	}
}

// TestDemoServe is the serving half of the main job: the bundled model, the
// bundled speech clip through HTTP, the summary, a clean shutdown.
func TestDemoServe(t *testing.T) {
	dir := stageBundled(t, t.TempDir())
	var out bytes.Buffer
	if err := demoServe(context.Background(), &out, dir, bundled.SpeechName, bundled.Speech()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"hidden states [1 1500 64] float32", "realtime factor: ", `whisper_encoder_backend_info{backend="cpu"`,
		`whisper_encoder_requests_total{code="OK",method="http_encode"} 1`, "server drained and shut down cleanly",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestEncodeRemoteLocked: `encode --server` and `loadtest` reach a server with TLS and bearer
// tokens through --ca-file/--tls and --token-file, and fail clearly without them.
func TestEncodeRemoteLocked(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := servertest.WriteCert(t, dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpURL, grpcAddr := servertest.StartWith(t, stageBundled(t, t.TempDir()), func(o *server.Options) {
		var err error
		if o.TLS, err = server.LoadCertFiles(certFile, keyFile, nil); err != nil {
			t.Fatal(err)
		}
		if o.Auth, err = server.LoadTokens(tokenFile, nil); err != nil {
			t.Fatal(err)
		}
	})
	wav := "../../encoder/bundled/speech_22k.wav"
	out := filepath.Join(dir, "hidden.npy")
	for _, addr := range []string{httpURL, grpcAddr} {
		if err := runEncode(context.Background(), []string{"--server", addr, "--ca-file", certFile, "--token-file", tokenFile, "--out", out, wav}); err != nil {
			t.Errorf("%s with CA and token: %v", addr, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", httpURL, "--ca-file", certFile}, "HTTP 401"},
		{[]string{"--server", grpcAddr, "--ca-file", certFile}, "Unauthenticated"},
		{[]string{"--server", httpURL, "--token-file", tokenFile}, "certificate"},
		{[]string{"--server", grpcAddr, "--token-file", tokenFile}, "Unavailable"}, // plain text to a TLS port
		{[]string{"--server", grpcAddr, "--ca-file", certFile, "--token-file", filepath.Join(dir, "none")}, "token file"},
	} {
		err := runEncode(context.Background(), append(tc.args, "--out", out, wav))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("encode %q: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "t0ken") {
			t.Errorf("encode %q: the error shows the token: %v", tc.args, err)
		}
	}
	code, stdout := runQuiet(t, "loadtest", "--target", httpURL, "--ca-file", certFile, "--token-file", tokenFile,
		"--concurrency", "1", "--duration", "1ms", "--timeout", "1m")
	if code != 0 || !strings.Contains(stdout, " 0 errors") {
		t.Errorf("loadtest over TLS with a token: exit %d\n%s", code, stdout)
	}
}
