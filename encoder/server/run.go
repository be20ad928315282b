package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
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
	gs := s.GRPCServer()
	errc := make(chan error, 3)
	go func() {
		if err := hs.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
	grpcDone := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(grpcDone)
	}()
	httpErr := hs.Shutdown(dctx) // bounded by the per-request read and write deadlines
	var drainErr error
	select {
	case <-grpcDone:
	case <-dctx.Done():
		gs.Stop()
	case <-s.idle(dctx):
		// Every accepted request has been handled. What may be left are
		// responses queued for clients that do not read them (their calls
		// were cut after WriteTimeout): give the transport that long to
		// flush, then close their connections.
		select {
		case <-grpcDone:
		case <-time.After(s.opts.WriteTimeout):
			s.log.Warn("closing gRPC connections whose clients do not take their responses")
			gs.Stop()
		}
	}
	if s.active.Load() > 0 || dctx.Err() != nil {
		drainErr = fmt.Errorf("accepted requests did not finish within the drain timeout of %v", drainTimeout)
	}
	drainErr = errors.Join(httpErr, drainErr)
	if drainErr == nil {
		s.Close()
		s.log.Info("drained")
	} else {
		hs.Close()
	}
	return errors.Join(runErr, drainErr)
}
