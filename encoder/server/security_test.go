package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
)

// writeFileAtomic replaces path the way a Secret volume update does: a new
// file renamed over the old one.
func writeFileAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// selfSigned makes a certificate for 127.0.0.1 with the given serial and
// writes tls.crt and tls.key into dir.
func selfSigned(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "whisper-encoder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// key first: a rotation that is half done (new key, old cert) must not break serving
	writeFileAtomic(t, filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	writeFileAtomic(t, filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runTLS serves a fake model over TLS and returns the HTTP and gRPC addresses.
func runTLS(t *testing.T, certs *CertFiles) (string, string) {
	t.Helper()
	opts := DefaultOptions()
	opts.ShutdownDelay, opts.TLS = 0, certs
	s, err := New(newGated(fakeInfo(), false), fakeInfo(), opts)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, s, hl, gl, 10*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return hl.Addr().String(), gl.Addr().String()
}

// servedSerial connects afresh and returns the serial of the certificate served.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) (int64, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestTLSServesAndRotates: HTTP and gRPC serve over TLS from cert/key files,
// plain-text clients are refused, and a rotated pair is served to the next
// connection without a restart.
func TestTLSServesAndRotates(t *testing.T) {
	dir := t.TempDir()
	first := selfSigned(t, dir, 1)
	certs, err := LoadCertFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr, grpcAddr := runTLS(t, certs)
	roots := x509.NewCertPool()
	roots.AddCert(first)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
	waitFor(t, "TLS readiness", func() bool {
		resp, err := hc.Get("https://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := hc.Get("https://" + httpAddr + "/v1/model")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /v1/model over TLS: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP served: %s", body)
		}
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := encoderv1.NewEncoderClient(conn).GetModel(ctx, &encoderv1.GetModelRequest{}); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}

	second := selfSigned(t, dir, 2)
	roots.AddCert(second)
	for _, addr := range []string{httpAddr, grpcAddr} {
		if got, err := servedSerial(t, addr, roots); err != nil || got != 2 {
			t.Errorf("%s after rotation: serial %d (%v), want 2", addr, got, err)
		}
	}
	// a broken pair (a key that does not match) keeps the last good one in service
	writeFileAtomic(t, filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: first.Raw}))
	if got, err := servedSerial(t, httpAddr, roots); err != nil || got != 2 {
		t.Errorf("after a mismatched pair: serial %d (%v), want 2 (the last good one)", got, err)
	}
}

func TestCertFilesFromFlags(t *testing.T) {
	if c, err := CertFilesFromFlags("", "", nil); c != nil || err != nil {
		t.Errorf("no flags: %v, %v", c, err)
	}
	if _, err := CertFilesFromFlags("a.crt", "", nil); err == nil || !strings.Contains(err.Error(), "want both") {
		t.Errorf("cert without key: %v", err)
	}
	if _, err := CertFilesFromFlags("/nonexistent/tls.crt", "/nonexistent/tls.key", nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/tls.crt") {
		t.Errorf("missing files: %v", err)
	}
}

// TestBearerAuth: with a token file, every HTTP path but the probes (and
// /metrics unless AuthMetrics) and every gRPC call but health need the token;
// a rewritten file rotates the tokens.
func TestBearerAuth(t *testing.T) {
	for _, authMetrics := range []bool{false, true} {
		tokenFile := filepath.Join(t.TempDir(), "tokens")
		writeFileAtomic(t, tokenFile, []byte("# clients\nold-token\n\nsecond-token\n"))
		tokens, err := LoadTokens(tokenFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		opts := DefaultOptions()
		opts.Auth, opts.AuthMetrics = tokens, authMetrics
		h := start(t, newGated(fakeInfo(), false), fakeInfo(), opts)
		h.waitReady(t) // /readyz is open

		get := func(path, token string) *http.Response {
			req, _ := http.NewRequest(http.MethodGet, h.base+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := get(p, ""); r.StatusCode != http.StatusOK {
				t.Errorf("%s without a token: %d, want 200", p, r.StatusCode)
			}
		}
		if r := get("/metrics", ""); (r.StatusCode == http.StatusUnauthorized) != authMetrics {
			t.Errorf("/metrics without a token (AuthMetrics %v): %d", authMetrics, r.StatusCode)
		}
		for _, tok := range []string{"", "wrong", "old-token-but-longer", "# clients"} {
			r := get("/v1/model", tok)
			if r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != authRealm {
				t.Errorf("/v1/model with token %q: %d, WWW-Authenticate %q", tok, r.StatusCode, r.Header.Get("WWW-Authenticate"))
			}
		}
		if r := h.post(context.Background(), "application/x-npy", constMel(t, 80, 3000, 0), ""); r.status != http.StatusUnauthorized {
			t.Errorf("POST /v1/encode without a token: %d", r.status)
		}
		for _, tok := range []string{"old-token", "second-token"} {
			if r := get("/v1/model", tok); r.StatusCode != http.StatusOK {
				t.Errorf("/v1/model with token %q: %d", tok, r.StatusCode)
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := h.grpc.GetModel(ctx, &encoderv1.GetModelRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("GetModel without a token: %v", err)
		}
		if _, err := h.grpc.Encode(ctx, &encoderv1.EncodeRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("Encode without a token: %v", err)
		}
		if _, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("health without a token: %v", err)
		}
		authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer old-token")
		if _, err := h.grpc.GetModel(authed, &encoderv1.GetModelRequest{}); err != nil {
			t.Errorf("GetModel with a token: %v", err)
		}

		writeFileAtomic(t, tokenFile, []byte("new-token\n"))
		if r := get("/v1/model", "old-token"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("a removed token still works: %d", r.StatusCode)
		}
		if r := get("/v1/model", "new-token"); r.StatusCode != http.StatusOK {
			t.Errorf("the new token: %d", r.StatusCode)
		}
		if _, err := h.grpc.GetModel(authed, &encoderv1.GetModelRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("GetModel with a removed token: %v", err)
		}
		os.Remove(tokenFile) // unreadable: nobody gets in
		if r := get("/v1/model", "new-token"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("with the token file gone: %d, want 401", r.StatusCode)
		}
		cancel()
	}
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "none"), nil); err == nil {
		t.Error("a missing token file loaded")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("# nothing\n\n"), 0o600)
	if _, err := LoadTokens(empty, nil); err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Errorf("an empty token file: %v", err)
	}
}

// TestReflectionOffByDefault: reflection lists the API only when asked for.
func TestReflectionOffByDefault(t *testing.T) {
	h := start(t, newGated(fakeInfo(), false), fakeInfo(), DefaultOptions())
	h.waitReady(t)
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(context.Background())
	if err == nil {
		_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("reflection without Options.Reflection: %v, want Unimplemented", err)
	}
}

// TestServedSourceRedacted: a manifest staged before redaction existed (its
// source a signed URL) is served without the signature.
func TestServedSourceRedacted(t *testing.T) {
	const planted = "PLANTEDsig0123456789abcdef"
	info := fakeInfo()
	info.Source = "https://bucket.example/m.onnx?X-Amz-Signature=" + planted
	h := start(t, newGated(info, false), info, DefaultOptions())
	h.waitReady(t)
	resp, err := http.Get(h.base + "/v1/model")
	if err != nil {
		t.Fatal(err)
	}
	var got Info
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || got.Source != "https://bucket.example/m.onnx?X-Amz-Signature=REDACTED" {
		t.Errorf("/v1/model source %q (%v)", got.Source, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := h.grpc.GetModel(ctx, &encoderv1.GetModelRequest{})
	if err != nil || strings.Contains(m.String(), planted) {
		t.Errorf("GetModel = %v (%v): shows the signature", m, err)
	}
	mresp, err := http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if strings.Contains(string(body), planted) || strings.Contains(h.logBuf.String(), planted) {
		t.Error("metrics or logs show the signature")
	}
}

// BenchmarkTokensCheck is the per-request cost of bearer auth (a stat of the
// token file, a sha256 and constant-time compares against 8 tokens).
func BenchmarkTokensCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tokens")
	var lines []string
	for i := range 8 {
		lines = append(lines, strings.Repeat(string(rune('a'+i)), 40))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	tok, err := LoadTokens(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	header := "Bearer " + lines[7]
	for b.Loop() {
		if !tok.Check(header) {
			b.Fatal("valid token refused")
		}
	}
}
