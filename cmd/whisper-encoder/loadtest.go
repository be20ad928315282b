package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/bundled"
	"github.com/xdna-whisper/xdna-whisper/encoder/client"
	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

func init() {
	register(command{
		name:    "loadtest",
		summary: "drive a running server with real audio at several concurrencies; report throughput, latency, refusals",
		run:     runLoadtest,
	})
}

func runLoadtest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	var (
		target   = fs.String("target", "http://127.0.0.1:8080", "server: http://HOST:PORT (POST /v1/encode) or gRPC HOST:PORT")
		file     = fs.String("file", "", "request body: audio (WAV/FLAC) or a log-mel .npy (default: the bundled speech clip, "+bundled.SpeechName+")")
		levels   = fs.String("concurrency", "1,4,16,64", "comma-separated client counts, run one after another")
		duration = fs.Duration("duration", 20*time.Second, "length of each run")
		stream   = fs.Bool("stream", false, "gRPC: use EncodeStream instead of Encode")
		backoff  = fs.Duration("refusal-backoff", 50*time.Millisecond, "a client's pause after a refusal (429 / RESOURCE_EXHAUSTED)")
		timeout  = fs.Duration("timeout", 5*time.Minute, "per-request timeout")
		weights  = fs.String("bench-weights", "", "also measure the encoder in-process on this staged model (same --bench-threads and --bench-batch as the server) for the saturation ratio")
		threads  = fs.Int("bench-threads", 0, "threads of the in-process reference (default GOMAXPROCS)")
		batch    = fs.Int("bench-batch", 1, "batch of the in-process reference")
		ratioC   = fs.Int("ratio-concurrency", 4, "server concurrency for the saturation ratio rounds")
		rounds   = fs.Int("rounds", 3, "alternating in-process/server rounds for the saturation ratio")
		metrics  = fs.String("metrics", "", "the server's /metrics URL, for its backend busy ratio per level (default: from an http(s):// target)")
		remote   = addRemoteFlags(fs)
	)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{errors.New("loadtest takes no arguments")}
	}
	conc, err := parseLevels(*levels)
	if err != nil {
		return usageError{err}
	}
	name, body := bundled.SpeechName, bundled.Speech()
	if *file != "" {
		if body, err = os.ReadFile(*file); err != nil {
			return err
		}
		name = *file
	}
	isNPY := strings.EqualFold(filepath.Ext(name), ".npy")
	seconds, windows, err := describeInput(body, isNPY)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	send, closeFn, err := sender(remote, *target, body, isNPY, *stream)
	if err != nil {
		return err
	}
	defer closeFn()
	fmt.Printf("loadtest: %s → %s (%.2f s of audio, %d window(s) per request), %v per level\n", name, *target, seconds, windows, *duration)
	if *metrics == "" && strings.HasPrefix(*target, "http") {
		*metrics = strings.TrimSuffix(*target, "/") + "/metrics"
	}
	for _, c := range conc {
		before, _ := scrapeBusy(ctx, remote, *metrics)
		rep, err := client.RunLoad(ctx, client.LoadOptions{
			Concurrency: c, Duration: *duration, Send: send, AudioSeconds: seconds, Windows: windows,
			RefusalBackoff: *backoff, Timeout: *timeout,
		})
		if err != nil {
			return err
		}
		fmt.Println(rep)
		if after, err := scrapeBusy(ctx, remote, *metrics); err == nil && before.windows < after.windows {
			fmt.Printf("  server: backend busy %.0f%% of the run, %.3f s compute per window, %d windows\n",
				100*(after.busy-before.busy)/rep.Elapsed.Seconds(), (after.compute-before.compute)/(after.windows-before.windows), int(after.windows-before.windows))
		}
		if rep.FirstError != "" {
			fmt.Printf("  first error: %s\n", rep.FirstError)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if *weights == "" {
		return nil
	}
	return saturationRatio(ctx, send, func(ctx context.Context) (busy, error) { return scrapeBusy(ctx, remote, *metrics) }, *weights, *threads, *batch, *ratioC, *rounds, *duration, seconds, windows)
}

// saturationRatio alternates the in-process encoder (same weights, threads and
// batch as the server, called back to back) with the server loaded at
// concurrency conc, rounds times, and reports each pair and the median ratio
// of server to in-process throughput. Alternating keeps both sides under the
// same background load.
func saturationRatio(ctx context.Context, send client.Sender, scrape func(context.Context) (busy, error), dir string, threads, batch, conc, rounds int, d time.Duration, seconds float64, windows int) error {
	enc, err := model.Load(dir, model.Options{Threads: threads})
	if err != nil {
		return err
	}
	defer enc.Close()
	fmt.Printf("saturation ratio: in-process encoder (%s, %d threads, batch %d) vs the server at concurrency %d, %d alternating rounds of %v\n",
		enc.Backend(), enc.Threads(), batch, conc, rounds, d)
	var ratios []float64
	for r := range rounds {
		ref, err := benchInProcess(ctx, enc, batch, d)
		if err != nil {
			return err
		}
		before, _ := scrape(ctx)
		rep, err := client.RunLoad(ctx, client.LoadOptions{Concurrency: conc, Duration: d, Send: send, AudioSeconds: seconds, Windows: windows})
		if err != nil {
			return err
		}
		ratios = append(ratios, rep.WindowsPerSecond/ref)
		fmt.Printf("  round %d: in-process %.3f windows/s, server %.3f windows/s (%d ok, %d errors): %.0f%%",
			r+1, ref, rep.WindowsPerSecond, rep.OK, rep.Errors, 100*rep.WindowsPerSecond/ref)
		if after, err := scrape(ctx); err == nil && after.windows > before.windows {
			fmt.Printf("; server backend busy %.0f%%", 100*(after.busy-before.busy)/rep.Elapsed.Seconds())
		}
		fmt.Println()
	}
	slices.Sort(ratios)
	fmt.Printf("median server/in-process throughput: %.0f%%\n", 100*ratios[len(ratios)/2])
	return nil
}

// busy is the part of a server's metrics that says how busy its backend was.
type busy struct{ busy, compute, windows float64 }

// scrapeBusy reads the backend busy seconds, batch compute seconds and
// windows encoded from a /metrics URL.
func scrapeBusy(ctx context.Context, remote *remoteFlags, metricsURL string) (busy, error) {
	if metricsURL == "" {
		return busy{}, errors.New("no metrics URL")
	}
	u, err := url.Parse(metricsURL)
	if err != nil || u.Host == "" {
		return busy{}, fmt.Errorf("metrics URL %q: want http(s)://HOST:PORT/PATH", metricsURL)
	}
	h, err := remote.http(u.Scheme + "://" + u.Host)
	if err != nil {
		return busy{}, err
	}
	body, err := h.Get(ctx, u.EscapedPath())
	if err != nil {
		return busy{}, err
	}
	var b busy
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "whisper_encoder_backend_busy_seconds_total":
			b.busy = v
		case "whisper_encoder_compute_seconds_sum":
			b.compute = v
		case "whisper_encoder_windows_encoded_total":
			b.windows = v
		}
	}
	return b, nil
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--concurrency %q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// describeInput returns the audio seconds and 30 s windows one request carries.
func describeInput(body []byte, isNPY bool) (float64, int, error) {
	if isNPY {
		a, err := npy.Read(bytes.NewReader(body), 0)
		if err != nil {
			return 0, 0, err
		}
		frames := a.Shape[len(a.Shape)-1]
		return float64(frames*mel.Hop) / mel.SampleRate, 1, nil
	}
	samples, err := audio.Load(body, audio.FormatUnknown, 0, 0)
	if err != nil {
		return 0, 0, err
	}
	return float64(len(samples)) / audio.SampleRate, len(mel.Windows(samples)), nil
}

// sender builds the request function for the target's transport.
func sender(remote *remoteFlags, target string, body []byte, isNPY, stream bool) (client.Sender, func(), error) {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		ct := "application/octet-stream"
		if isNPY {
			ct = "application/x-npy"
		}
		h, err := remote.http(target)
		if err != nil {
			return nil, nil, err
		}
		return client.HTTPSender(h, body, ct), func() {}, nil
	}
	c, err := remote.dial(target)
	if err != nil {
		return nil, nil, err
	}
	req := client.AudioRequest(body, encoderv1.AudioFormat_AUDIO_FORMAT_UNSPECIFIED, 0)
	if isNPY {
		a, err := npy.Read(bytes.NewReader(body), 0)
		if err != nil {
			_ = c.Close() // never used: nothing to report
			return nil, nil, err
		}
		if req, err = client.LogMelRequest(a); err != nil {
			_ = c.Close() // never used: nothing to report
			return nil, nil, err
		}
	}
	return client.GRPCSender(c, req, stream), func() { _ = c.Close() }, nil // after the run: nothing to report
}

// benchInProcess is the reference the server is measured against: the encoder
// called back to back on batches of log-mel windows for d.
func benchInProcess(ctx context.Context, enc *model.Encoder, batch int, d time.Duration) (float64, error) {
	n := enc.Config().NumMelBins
	logMel, err := mel.LogMel(nil, n)
	if err != nil {
		return 0, err
	}
	in := model.Tensor{Shape: []int{batch, n, mel.Frames}}
	for range batch {
		in.Data = append(in.Data, logMel...)
	}
	if _, err := enc.Encode(ctx, in); err != nil { // warm-up
		return 0, err
	}
	start, windows := time.Now(), 0
	for time.Since(start) < d {
		if _, err := enc.Encode(ctx, in); err != nil {
			return 0, err
		}
		windows += batch
	}
	return float64(windows) / time.Since(start).Seconds(), nil
}
