// Package servertest runs the real encoder server in-process for other packages' tests: the
// CPU encoder on staged weights, HTTP and gRPC on loopback listeners.
package servertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
)

// Start loads weights on the CPU encoder (2 threads) and serves them with the default server
// options until tb ends, when it drains the server and fails tb if serving failed. It returns
// once the server is ready: the HTTP base URL (http://127.0.0.1:port) and the gRPC address.
func Start(tb testing.TB, weights string) (httpURL, grpcAddr string) {
	tb.Helper()
	return StartWith(tb, weights, nil)
}

// StartWith is Start with the server options changed by mut (nil: none), e.g. TLS or
// bearer tokens; with TLS the URL is https://.
func StartWith(tb testing.TB, weights string, mut func(*server.Options)) (httpURL, grpcAddr string) {
	tb.Helper()
	enc, err := model.Load(weights, model.Options{Threads: 2})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { // after the server's cleanup below (last in, first out)
		if err := enc.Close(); err != nil {
			tb.Error(err)
		}
	})
	info, err := server.InfoFor(weights, "cpu")
	if err != nil {
		tb.Fatal(err)
	}
	opts := server.DefaultOptions()
	opts.ShutdownDelay = 0 // nothing routes to a test server: drain at once
	if mut != nil {
		mut(&opts)
	}
	s, err := server.New(server.ModelEncoder(enc), info, opts)
	if err != nil {
		tb.Fatal(err)
	}
	hl, gl := listen(tb), listen(tb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, s, hl, gl, time.Minute) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("server: %v", err)
		}
	})
	for deadline := time.Now().Add(time.Minute); !s.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("server not ready after 1 min")
		}
	}
	scheme := "http://"
	if opts.TLS != nil {
		scheme = "https://"
	}
	return scheme + hl.Addr().String(), gl.Addr().String()
}

// listen opens a loopback TCP listener on a port the kernel chooses.
func listen(tb testing.TB) net.Listener {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// WriteCert writes a self-signed certificate for 127.0.0.1 (a CA too, so clients can trust
// it by itself) into dir as tls.crt and tls.key, the file names of a kubernetes.io/tls Secret.
func WriteCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "encoder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	return certFile, keyFile
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
