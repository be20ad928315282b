package client

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/server/servertest"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCredentialsLockedServer: against a real server with TLS and bearer tokens, the
// clients with Credentials get through over HTTP and gRPC; without the token they get 401 /
// Unauthenticated, without the CA a certificate error, in plain text nothing.
func TestCredentialsLockedServer(t *testing.T) {
	weights, err := converttest.Demo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := servertest.WriteCert(t, dir)
	tokenFile := filepath.Join(dir, "tokens")
	write(t, tokenFile, "# the one client\n\n  s3cret-token  \n")
	base, addr := servertest.StartWith(t, weights, func(o *server.Options) {
		var err error
		if o.TLS, err = server.LoadCertFiles(certFile, keyFile, nil); err != nil {
			t.Fatal(err)
		}
		if o.Auth, err = server.LoadTokens(tokenFile, nil); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("servertest URL %s, want https://", base)
	}
	token, err := LoadToken(tokenFile)
	if err != nil || token != "s3cret-token" {
		t.Fatalf("LoadToken = %q, %v; want the first non-comment line, trimmed", token, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good := Credentials{CAFile: certFile, Token: token}

	httpWith := func(c Credentials) *HTTP {
		t.Helper()
		hc, err := c.HTTPClient()
		if err != nil {
			t.Fatal(err)
		}
		return &HTTP{Base: base, Client: hc}
	}
	if _, err := httpWith(good).Get(ctx, "/v1/model"); err != nil {
		t.Errorf("HTTP with CA and token: %v", err)
	}
	var he *HTTPError
	if _, err := httpWith(Credentials{CAFile: certFile}).Get(ctx, "/v1/model"); !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Errorf("HTTP without a token: %v, want HTTP 401", err)
	}
	var unknownCA x509.UnknownAuthorityError
	if _, err := httpWith(Credentials{Token: token}).Get(ctx, "/v1/model"); !errors.As(err, &unknownCA) {
		t.Errorf("HTTP without the CA: %v, want an unknown-authority error", err)
	}

	grpcWith := func(c Credentials) *GRPC {
		t.Helper()
		opts, err := c.DialOptions()
		if err != nil {
			t.Fatal(err)
		}
		g, err := Dial(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g
	}
	if mi, err := grpcWith(good).Model(ctx); err != nil || mi.NMels != 80 {
		t.Errorf("gRPC with CA and token: %v, %v", mi, err)
	}
	if _, err := grpcWith(Credentials{CAFile: certFile}).Model(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without a token: %v, want Unauthenticated", err)
	}
	if _, err := grpcWith(Credentials{ServerName: "localhost", CAFile: certFile, Token: token}).Model(ctx); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC verifying the wrong name: %v, want Unavailable (handshake refused)", err)
	}
	if _, err := grpcWith(Credentials{}).Model(ctx); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC in plain text to a TLS server: %v, want Unavailable", err)
	}
}

func TestCredentialsBadInput(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	write(t, notPEM, "not a certificate")
	if _, err := (Credentials{CAFile: notPEM}).HTTPClient(); err == nil || !strings.Contains(err.Error(), "want PEM certificates") {
		t.Errorf("CA file without PEM: %v", err)
	}
	if _, err := (Credentials{CAFile: filepath.Join(dir, "none")}).DialOptions(); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("missing CA file: %v", err)
	}
	empty := filepath.Join(dir, "token")
	write(t, empty, "# nothing\n\n")
	if _, err := LoadToken(empty); err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Errorf("empty token file: %v", err)
	}
}
