package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Run serves s over HTTP on httpLis and gRPC on grpcLis, warms the model up
// (readiness turns true once one window has been encoded), and on ctx's end
// shuts down in three steps: readiness and gRPC health turn false while new
// requests are still served for ShutdownDelay (so endpoints stop routing
// here); then the drain: uploads still arriving are cut, new requests are
// refused, the listeners close and every accepted request finishes; then the
// batcher stops. It returns nil after a complete drain, and an error if
// serving or the warm-up fails, or accepted requests did not finish within
// drainTimeout.
func Run(ctx context.Context, s *Server, httpLis, grpcLis net.Listener, drainTimeout time.Duration) error {
	hs := &http.Server{
		Handler:           s.HTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Bodies are read within Options.ReadTimeout and responses written
		// within Options.WriteTimeout, per request (see readBody).
		IdleTimeout:    time.Minute,
		MaxHeaderBytes: maxHeaderBytes,
	}
	httpLis = netutil.LimitListener(httpLis, s.opts.MaxConnections)
	grpcLis = netutil.LimitListener(grpcLis, s.opts.MaxConnections)
	var gs *grpc.Server
	if s.opts.TLS != nil {
		hs.TLSConfig = s.opts.TLS.TLSConfig()
		gs = s.GRPCServer(grpc.Creds(credentials.NewTLS(s.opts.TLS.TLSConfig())))
	} else {
		gs = s.GRPCServer()
	}
	errc := make(chan error, 3)
	go func() {
		if err := serveHTTP(hs, httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	go func() {
		if err := gs.Serve(grpcLis); err != nil {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	s.log.Info("serving", "http", httpLis.Addr().String(), "grpc", grpcLis.Addr().String())
	go func() {
		if err := s.Warmup(ctx); err != nil && ctx.Err() == nil {
			errc <- err
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
		s.Unready()
		select {
		case <-time.After(s.opts.ShutdownDelay):
		case runErr = <-errc:
		}
	case runErr = <-errc:
	}

	s.Drain()
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	grpcDone, httpDone := make(chan struct{}), make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(grpcDone)
	}()
	go func() {
		_ = hs.Shutdown(dctx)
		close(httpDone)
	}()
	transports := func() <-chan struct{} {
		c := make(chan struct{})
		go func() { <-grpcDone; <-httpDone; close(c) }()
		return c
	}()
	select {
	case <-transports:
	case <-s.idle(dctx):
		// Every accepted request has been handled. What may be left are
		// responses queued for clients that do not read them (cut after
		// --write-timeout): give the transports that long to flush, within
		// the drain timeout, then close their connections.
		select {
		case <-transports:
		case <-time.After(s.opts.WriteTimeout):
		case <-dctx.Done():
		}
	}
	late := s.active.Load()
	if late > 0 {
		// Transcriptions (SSE and gRPC streams among them) are cut: they
		// end with a 503 / UNAVAILABLE their clients can read, and free
		// their decoder slots, before the connections close.
		s.cutTranscriptions()
		gctx, gcancel := context.WithTimeout(context.Background(), cutGrace)
		<-s.idle(gctx)
		gcancel()
	}
	_ = hs.Close() // Shutdown closed the listeners: this only cuts connections left open
	gs.Stop()
	if n := s.active.Load(); n > 0 {
		return errors.Join(runErr, fmt.Errorf("%d accepted requests did not finish within the drain timeout of %v", n, drainTimeout))
	}
	s.Close()
	if late > 0 {
		s.log.Warn("drained; transcriptions cut at the drain timeout", "requests", late)
		return errors.Join(runErr, fmt.Errorf("%d accepted requests did not finish within the drain timeout of %v; transcriptions among them were cut", late, drainTimeout))
	}
	s.log.Info("drained")
	return runErr
}

// cutGrace is how long cut transcriptions get to tell their clients.
const cutGrace = 2 * time.Second

// serveHTTP serves hs on l, over TLS when hs has a TLS configuration.
func serveHTTP(hs *http.Server, l net.Listener) error {
	if hs.TLSConfig != nil {
		return hs.ServeTLS(l, "", "")
	}
	return hs.Serve(l)
}
