package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
)

// Sender sends one request and returns when its answer is complete.
type Sender func(ctx context.Context) error

// HTTPSender posts body to /v1/encode.
func HTTPSender(c *HTTP, body []byte, contentType string) Sender {
	return func(ctx context.Context) error {
		_, err := c.Encode(ctx, body, contentType)
		return err
	}
}

// GRPCSender calls Encode, or EncodeStream when stream is true.
func GRPCSender(c *GRPC, req *encoderv1.EncodeRequest, stream bool) Sender {
	if stream {
		return func(ctx context.Context) error {
			return c.EncodeStream(ctx, req, func(Window) error { return nil })
		}
	}
	return func(ctx context.Context) error {
		_, err := c.Encode(ctx, req)
		return err
	}
}

// IsRefusal reports whether err is the server pushing back for load: HTTP 429
// or gRPC RESOURCE_EXHAUSTED.
func IsRefusal(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status == http.StatusTooManyRequests
	}
	return status.Code(err) == codes.ResourceExhausted
}

// LoadOptions configure RunLoad.
type LoadOptions struct {
	// Concurrency is the number of clients, each sending its next request
	// as soon as its previous one is answered (closed loop).
	Concurrency int
	// Duration bounds the run; Requests (if > 0) bounds the requests sent.
	Duration time.Duration
	Requests int
	// Send sends one request.
	Send Sender
	// AudioSeconds and Windows describe one request, for the throughput figures.
	AudioSeconds float64
	Windows      int
	// RefusalBackoff is how long a client waits after a refusal before it
	// sends again (the server's Retry-After is a hint for real clients; a load
	// test keeps the pressure on).
	RefusalBackoff time.Duration
	// Timeout bounds each request (0: none beyond Duration).
	Timeout time.Duration
}

// LoadReport summarises a run.
type LoadReport struct {
	Concurrency int
	Elapsed     time.Duration
	// Requests = OK + Refused + Errors.
	Requests, OK, Refused, Errors int
	// FirstError is the first non-refusal error, if any.
	FirstError string
	// WindowsPerSecond and RealtimeFactor (audio seconds encoded per wall
	// second) count successful requests only.
	WindowsPerSecond, RealtimeFactor float64
	// Latency percentiles of successful requests.
	P50, P99, Max time.Duration
}

// String is the report as one table row.
func (r LoadReport) String() string {
	return fmt.Sprintf("concurrency %3d: %5d requests in %6.1fs: %5d ok, %5d refused, %3d errors | %7.2f windows/s, %6.1fx realtime | p50 %7.0fms p99 %7.0fms max %7.0fms",
		r.Concurrency, r.Requests, r.Elapsed.Seconds(), r.OK, r.Refused, r.Errors,
		r.WindowsPerSecond, r.RealtimeFactor, ms(r.P50), ms(r.P99), ms(r.Max))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// RunLoad drives Send from Concurrency clients until Duration has passed (or
// Requests have been sent, or ctx ends), then waits for the requests in
// flight and reports.
func RunLoad(ctx context.Context, o LoadOptions) (LoadReport, error) {
	if o.Concurrency < 1 || o.Send == nil || (o.Duration <= 0 && o.Requests <= 0) {
		return LoadReport{}, errors.New("load: want concurrency ≥ 1, a sender, and a duration or a request count")
	}
	if o.Windows < 1 {
		o.Windows = 1
	}
	stopAt := time.Now().Add(o.Duration)
	var (
		mu        sync.Mutex
		rep       = LoadReport{Concurrency: o.Concurrency}
		latencies []time.Duration
		sent      int
		wg        sync.WaitGroup
	)
	next := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil || (o.Duration > 0 && time.Now().After(stopAt)) || (o.Requests > 0 && sent >= o.Requests) {
			return false
		}
		sent++
		return true
	}
	start := time.Now()
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next() {
				rctx, cancel := ctx, context.CancelFunc(func() {})
				if o.Timeout > 0 {
					rctx, cancel = context.WithTimeout(ctx, o.Timeout)
				}
				t0 := time.Now()
				err := o.Send(rctx)
				took := time.Since(t0)
				cancel()
				mu.Lock()
				rep.Requests++
				switch {
				case err == nil:
					rep.OK++
					latencies = append(latencies, took)
				case IsRefusal(err):
					rep.Refused++
				default:
					rep.Errors++
					if rep.FirstError == "" {
						rep.FirstError = err.Error()
					}
				}
				mu.Unlock()
				if IsRefusal(err) && o.RefusalBackoff > 0 {
					select {
					case <-time.After(o.RefusalBackoff):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		rep.P50 = latencies[(n-1)*50/100]
		rep.P99 = latencies[(n-1)*99/100]
		rep.Max = latencies[n-1]
	}
	sec := rep.Elapsed.Seconds()
	rep.WindowsPerSecond = float64(rep.OK*o.Windows) / sec
	rep.RealtimeFactor = float64(rep.OK) * o.AudioSeconds / sec
	return rep, nil
}
