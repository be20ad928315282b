package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Credentials say how to reach a locked server (`serve --tls-cert/--tls-key`,
// `--auth-token-file`): the CA to verify its certificate with and the bearer
// token to present. The zero value is plain text without a token.
type Credentials struct {
	// TLS makes gRPC connections use TLS; HTTP follows the URL's scheme
	// (https:// is TLS whatever this says).
	TLS bool
	// CAFile is a PEM bundle of the CAs to trust (empty: the system's roots).
	// Setting it implies TLS.
	CAFile string
	// ServerName is the name to verify in the server's certificate, when it
	// differs from the address dialled (a pod IP, a port-forward).
	ServerName string
	// Token is sent as "Authorization: Bearer <token>" on every request.
	Token string
}

// LoadToken reads a bearer token from path: the first line that is neither
// blank nor a # comment, trimmed (the format of the server's token file, so
// a client may be handed that file with one line).
func LoadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l, nil
		}
	}
	return "", fmt.Errorf("token file %s: holds no token (want one line, found none that is not blank or a # comment)", path)
}

// usesTLS reports whether gRPC connections use TLS.
func (c Credentials) usesTLS() bool { return c.TLS || c.CAFile != "" }

// TLSConfig is the client TLS configuration: the CAs of CAFile (or the
// system's), ServerName, TLS 1.2 at least.
func (c Credentials) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile == "" {
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("CA file %s: want PEM certificates, found none", c.CAFile)
	}
	return cfg, nil
}

// HTTPClient is an http.Client that trusts the configured CAs and sends the token.
func (c Credentials) HTTPClient() (*http.Client, error) {
	cfg, err := c.TLSConfig()
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	var rt http.RoundTripper = t
	if c.Token != "" {
		rt = bearer{token: c.Token, next: t}
	}
	return &http.Client{Transport: rt}, nil
}

// DialOptions are the gRPC options of these credentials, for Dial.
func (c Credentials) DialOptions() ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if c.usesTLS() {
		cfg, err := c.TLSConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if c.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: c.Token, secure: c.usesTLS()}))
	}
	return opts, nil
}

// bearer adds the token to HTTP requests and gRPC calls.
type bearer struct {
	token string
	next  http.RoundTripper
	// secure: gRPC refuses to send the token over a connection without TLS
	// unless it is false (the server may take tokens in plain text).
	secure bool
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") != "" {
		return nil, errors.New("request already has an Authorization header")
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b bearer) RequireTransportSecurity() bool { return b.secure }
