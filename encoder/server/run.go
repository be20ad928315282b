package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Run serves s over HTTP on httpLis and gRPC on grpcLis, warms the model up
// (readiness turns true once one window has been encoded), and on ctx's end
// drains: readiness and health turn false, the listeners close, every
// accepted request finishes, then the batcher stops. It returns nil after a
// complete drain, and an error if serving, the warm-up or the drain (within
// drainTimeout) fails.
func Run(ctx context.Context, s *Server, httpLis, grpcLis net.Listener, drainTimeout time.Duration) error {
	hs := &http.Server{
		Handler:           s.HTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // a whole body, so a trickling upload cannot hold a slot forever
		IdleTimeout:       2 * time.Minute,
	}
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
	httpErr := hs.Shutdown(dctx)
	select {
	case <-grpcDone:
	case <-dctx.Done():
		gs.Stop()
	}
	drainErr := errors.Join(httpErr, dctx.Err())
	if drainErr == nil {
		s.Close()
		s.log.Info("drained")
	} else {
		drainErr = fmt.Errorf("drain did not finish within %v: %w", drainTimeout, drainErr)
		hs.Close()
	}
	return errors.Join(runErr, drainErr)
}
