package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// CertFiles serves a certificate and key from PEM files (a mounted
// kubernetes.io/tls Secret: tls.crt, tls.key, as cert-manager writes them)
// and picks up a rotation without a restart: each TLS handshake stats both
// files and reloads them when either changed. A pair that does not load
// (say, the certificate is already new but the key not yet) keeps the
// previous one in service until a later handshake finds a good pair.
type CertFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]fileStamp
}

// fileStamp tells whether a file changed: a Secret volume swaps a symlink to
// a new folder, so the inode changes even when size and time would not.
type fileStamp struct {
	ino, size int64
	mtime     time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = int64(st.Ino)
	}
	return s, nil
}

// LoadCertFiles loads the pair once (an error if it does not load) and
// returns a CertFiles that reloads it on change; log receives reload notices
// (nil: none).
func LoadCertFiles(certFile, keyFile string, log *slog.Logger) (*CertFiles, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CertFiles{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.current(); err != nil {
		return nil, err
	}
	return c, nil
}

// current returns the loaded pair, reloading it first if a file changed.
func (c *CertFiles) current() (*tls.Certificate, error) {
	var now [2]fileStamp
	var err error
	for i, p := range []string{c.certFile, c.keyFile} {
		if now[i], err = stampOf(p); err != nil {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.cert != nil && now == c.stamp {
		return c.cert, nil
	}
	if err == nil {
		var pair tls.Certificate
		if pair, err = tls.LoadX509KeyPair(c.certFile, c.keyFile); err == nil {
			if c.cert != nil {
				c.log.Info("TLS certificate reloaded", "cert", c.certFile, "notAfter", pair.Leaf.NotAfter)
			}
			c.cert, c.stamp = &pair, now
			return c.cert, nil
		}
	}
	err = fmt.Errorf("TLS certificate %s, key %s: %w", c.certFile, c.keyFile, err)
	if c.cert == nil {
		return nil, err
	}
	c.log.Warn("TLS certificate reload failed; serving the previous one", "err", err)
	return c.cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.current()
}

// TLSConfig is a server configuration serving the files' certificate, TLS
// 1.2 or newer. Each call returns a new Config (HTTP and gRPC each add their
// protocols to theirs).
func (c *CertFiles) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// errNoTLS marks a half-configured TLS (a certificate without a key).
var errNoTLS = errors.New("want both a certificate and a key file, or neither")

// CertFilesFromFlags is LoadCertFiles for --tls-cert/--tls-key: both empty
// means no TLS (nil, nil).
func CertFilesFromFlags(certFile, keyFile string, log *slog.Logger) (*CertFiles, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, fmt.Errorf("--tls-cert %q, --tls-key %q: %w", certFile, keyFile, errNoTLS)
	}
	return LoadCertFiles(certFile, keyFile, log)
}
