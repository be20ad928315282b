package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Tokens are the bearer tokens a client may present, read from a file (a
// mounted Secret): one token per line, blank lines and lines starting with
// '#' ignored. The file is stat'ed on each check and re-read when it changed,
// so tokens rotate without a restart; a file that cannot be read or holds no
// token accepts nobody (fail closed).
type Tokens struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	sums  [][sha256.Size]byte
	stamp fileStamp
}

// LoadTokens reads the token file; it is an error when it holds no token.
func LoadTokens(path string, log *slog.Logger) (*Tokens, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tokens{path: path, log: log}
	st, err := stampOf(path)
	if err == nil {
		err = t.load(st)
	}
	if err == nil && len(t.sums) == 0 {
		err = fmt.Errorf("token file %s holds no token (want one per line)", path)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// load reads the file; the caller holds mu or owns t.
func (t *Tokens) load(st fileStamp) error {
	b, err := os.ReadFile(t.path)
	if err != nil {
		t.sums = nil
		return fmt.Errorf("token file: %w", err)
	}
	var sums [][sha256.Size]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sums = append(sums, sha256.Sum256([]byte(line)))
	}
	t.sums, t.stamp = sums, st
	return nil
}

// Check reports whether an Authorization header value ("Bearer <token>")
// carries a valid token. It compares digests in constant time against every
// token, so neither a token's content nor its length leaks through timing.
func (t *Tokens) Check(authorization string) bool {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	t.mu.Lock()
	if st, err := stampOf(t.path); err != nil || st != t.stamp {
		if err == nil {
			err = t.load(st)
		}
		if err != nil {
			t.sums, t.stamp = nil, fileStamp{}
			t.log.Error("token file unreadable: refusing every request", "path", t.path, "err", err)
		} else {
			t.log.Info("token file reloaded", "path", t.path, "tokens", len(t.sums))
		}
	}
	sums := t.sums
	t.mu.Unlock()
	match := 0
	for i := range sums {
		match |= subtle.ConstantTimeCompare(sum[:], sums[i][:])
	}
	return match == 1
}

// authRealm is the WWW-Authenticate challenge of a refused HTTP request.
const authRealm = `Bearer realm="whisper-encoder"`

// openHTTPPath is a path served without a token: the probes, and /metrics
// unless Options.AuthMetrics.
func (s *Server) openHTTPPath(path string) bool {
	return path == "/healthz" || path == "/readyz" || (path == "/metrics" && !s.opts.AuthMetrics)
}

// withAuth wraps the whole HTTP API: without Options.Auth it is h itself;
// with it, a request to anything but an open path needs a valid bearer token
// and is refused with 401 and a WWW-Authenticate challenge otherwise.
func (s *Server) withAuth(h http.Handler) http.Handler {
	if s.opts.Auth == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.openHTTPPath(r.URL.Path) || s.opts.Auth.Check(r.Header.Get("Authorization")) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", authRealm)
		writeJSON(w, http.StatusUnauthorized, errorJSON{Error: "missing or invalid bearer token", Code: codes.Unauthenticated.String()})
	})
}

// withAuthTap runs before next (the upload admission) on every gRPC call:
// with Options.Auth, a call to anything but grpc.health.v1 needs a valid
// "authorization: Bearer <token>" metadata entry and ends with
// UNAUTHENTICATED otherwise, before its message is read or any budget held.
func (s *Server) withAuthTap(next tap.ServerInHandle) tap.ServerInHandle {
	if s.opts.Auth == nil {
		return next
	}
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if !strings.HasPrefix(info.FullMethodName, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") &&
			!s.opts.Auth.Check(first(info.Header, "authorization")) {
			return nil, status.Error(codes.Unauthenticated, "missing or invalid bearer token (metadata authorization: Bearer <token>)")
		}
		return next(ctx, info)
	}
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
