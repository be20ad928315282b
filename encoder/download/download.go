// Package download fetches model files over http(s) and from the Hugging Face
// hub (hf://ORG/REPO/PATH[@REV]): it streams to disk while hashing, verifies
// an expected sha256, retries transient failures with exponential backoff,
// resuming with a Range request where the server allows it, gives up on a
// stalled transfer instead of hanging, sends HF_TOKEN only to Hugging Face
// hosts, refuses files beyond a size cap and hosts an admin's Policy refuses,
// and never shows a URL's credentials (package redact).
package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// DefaultMaxBytes is the default size cap of one downloaded file (8 GiB; a
// whisper-large-v3 fp32 encoder is about 2.5 GB).
const DefaultMaxBytes = 8 << 30

// Options tune a download. The zero value works.
type Options struct {
	// SHA256 is the expected hex digest; empty skips the check.
	SHA256 string
	// Token is sent as "Authorization: Bearer <Token>" to Hugging Face hosts
	// only (see IsHFHost), never to a host a redirect leads to otherwise.
	Token string
	// HFEndpoint is the hub's base URL (default $HF_ENDPOINT or
	// https://huggingface.co); its host counts as a Hugging Face host.
	HFEndpoint string
	// Client is the HTTP client (default: a client without overall timeout).
	Client *http.Client
	// Attempts is the number of tries for transient failures (default 6).
	Attempts int
	// Backoff is the first retry delay, doubled each time up to 30 s (default 1 s).
	Backoff time.Duration
	// StallTimeout fails an attempt that receives no byte for this long (default 60 s).
	StallTimeout time.Duration
	// Progress, if set, is called as bytes arrive with the bytes done and the
	// total (-1 when unknown).
	Progress func(done, total int64)
	// Logger receives retry notices (default slog.Default()).
	Logger *slog.Logger
	// MaxBytes caps the file's size (default DefaultMaxBytes): a larger
	// Content-Length is refused up front and a body that grows beyond it
	// (with or without Content-Length) is cut off and removed.
	MaxBytes int64
	// Policy decides which hosts may be reached (nil: DefaultDeny only). It
	// guards the dialler of Client's transport when that is an *http.Transport
	// (or nil).
	Policy *Policy
}

func (o *Options) defaults() {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Attempts <= 0 {
		o.Attempts = 6
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HFEndpoint == "" {
		o.HFEndpoint = os.Getenv("HF_ENDPOINT")
	}
	if o.HFEndpoint == "" {
		o.HFEndpoint = "https://huggingface.co"
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
}

// Result describes a downloaded file.
type Result struct {
	Path   string
	SHA256 string
	Size   int64
}

// IsHFHost reports whether host (with or without port) is a Hugging Face
// host: huggingface.co, hf.co, their subdomains, or the endpoint's host.
func IsHFHost(host, endpoint string) bool {
	h := strings.ToLower(hostOnly(host))
	for _, d := range []string{"huggingface.co", "hf.co"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return strings.EqualFold(host, u.Host)
	}
	return false
}

func hostOnly(host string) string {
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.Contains(h, "]") {
		return h
	}
	return host
}

// ResolveHF turns hf://ORG/REPO/PATH[@REV] into the hub URL
// <endpoint>/ORG/REPO/resolve/REV/PATH (REV defaults to main).
func ResolveHF(ref, endpoint string) (string, error) {
	rest, ok := strings.CutPrefix(ref, "hf://")
	if !ok {
		return "", fmt.Errorf("hf reference %q: want hf://ORG/REPO/PATH[@REV]", ref)
	}
	rev := "main"
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest, rev = rest[:i], rest[i+1:]
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || rev == "" {
		return "", fmt.Errorf("hf reference %q: want hf://ORG/REPO/PATH[@REV]", ref)
	}
	if endpoint == "" {
		endpoint = "https://huggingface.co"
	}
	var p []string
	for _, seg := range strings.Split(parts[2], "/") {
		p = append(p, url.PathEscape(seg))
	}
	return fmt.Sprintf("%s/%s/%s/resolve/%s/%s", strings.TrimRight(endpoint, "/"),
		url.PathEscape(parts[0]), url.PathEscape(parts[1]), url.PathEscape(rev), strings.Join(p, "/")), nil
}

// permanent marks errors that retrying cannot fix.
type permanent struct{ error }

// Unwrap returns the underlying error.
func (p permanent) Unwrap() error { return p.error }

// errStall is the cause of an attempt canceled for receiving nothing.
var errStall = errors.New("stalled")

// ErrNotFound is in the chain of File's error when the server answered 404
// (an optional file of a model repository that is absent, for example).
var ErrNotFound = errors.New("not found")

// File downloads rawURL (http, https or hf://) to dst. The bytes go to
// dst + ".part" while they are hashed; dst appears only when the download is
// complete and, if opts.SHA256 is set, verified. On failure nothing is left.
// Errors and logs show rawURL through redact.URL.
func File(ctx context.Context, rawURL, dst string, opts Options) (Result, error) {
	opts.defaults()
	shown := redact.URL(rawURL)
	u := rawURL
	if strings.HasPrefix(rawURL, "hf://") {
		var err error
		if u, err = ResolveHF(rawURL, opts.HFEndpoint); err != nil {
			return Result{}, errors.New(redact.Text(err.Error()))
		}
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") {
		return Result{}, fmt.Errorf("download %s: want an http, https or hf:// URL", shown)
	}
	guard, err := opts.Policy.compile()
	if err != nil {
		return Result{}, fmt.Errorf("download %s: %w", shown, err)
	}
	part := dst + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("download %s: %w", shown, err)
	}
	httpc := guard.guardedClient(opts.Client)
	defer httpc.CloseIdleConnections()
	d := &transfer{opts: &opts, url: u, f: f, h: sha256.New(), total: -1, httpc: httpc, guard: guard}
	err = d.run(ctx)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = d.verify()
	}
	if err != nil {
		_ = os.Remove(part) // best effort: the download's error is the one to report
		return Result{}, fmt.Errorf("download %s: %w", shown, err)
	}
	if err := os.Rename(part, dst); err != nil {
		_ = os.Remove(part) // best effort: the download's error is the one to report
		return Result{}, fmt.Errorf("download %s: %w", shown, err)
	}
	return Result{Path: dst, SHA256: d.sum, Size: d.done}, nil
}

// transfer is one download across its attempts.
type transfer struct {
	opts  *Options
	url   string
	f     *os.File
	h     hash.Hash
	done  int64
	total int64
	sum   string
	httpc *http.Client // opts.Client guarded by opts.Policy
	guard *checker     // opts.Policy, also applied to request URLs (a proxy dials for them)
}

func (d *transfer) run(ctx context.Context) error {
	delay := d.opts.Backoff
	for attempt := 1; ; attempt++ {
		err := d.attempt(ctx)
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) || ctx.Err() != nil || attempt >= d.opts.Attempts {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if attempt >= d.opts.Attempts && !errors.As(err, &p) {
				return fmt.Errorf("giving up after %d attempts: %w", attempt, err)
			}
			return err
		}
		d.opts.Logger.Warn("download attempt failed; retrying", "url", redact.URL(d.url), "attempt", attempt,
			"bytes", d.done, "retryIn", delay.String(), "err", redact.Text(err.Error()))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// attempt requests the rest of the file (from d.done) and appends it.
func (d *transfer) attempt(ctx context.Context) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(d.opts.StallTimeout, func() { cancel(errStall) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(actx, http.MethodGet, d.url, nil)
	if err != nil {
		return permanent{err}
	}
	if _, err := d.guard.checkName(req.URL.Hostname()); err != nil {
		return permanent{err}
	}
	d.authorize(req)
	if d.done > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(d.done, 10)+"-")
	}
	client := d.client()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redact.URL(ue.URL)
		}
		if errors.Is(err, ErrRefused) {
			return permanent{err}
		}
		return d.cause(actx, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		if d.done > 0 { // the server ignored Range: start over
			if err := d.restart(); err != nil {
				return permanent{err}
			}
		}
		d.total = resp.ContentLength
		if err := d.checkSize(d.total); err != nil {
			return err
		}
	case resp.StatusCode == http.StatusPartialContent && d.done > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != d.done {
			if err := d.restart(); err != nil {
				return permanent{err}
			}
			return fmt.Errorf("server resumed at %q, want byte %d", resp.Header.Get("Content-Range"), d.done)
		}
		d.total = total
		if err := d.checkSize(d.total); err != nil {
			return err
		}
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %s", resp.Status)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return permanent{fmt.Errorf("HTTP %s (gated or private? set HF_TOKEN for Hugging Face)", resp.Status)}
	case resp.StatusCode == http.StatusNotFound:
		return permanent{fmt.Errorf("HTTP %s: %w", resp.Status, ErrNotFound)}
	default:
		return permanent{fmt.Errorf("HTTP %s", resp.Status)}
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 && d.done+int64(n) > d.opts.MaxBytes {
			return d.checkSize(d.done + int64(n))
		}
		if n > 0 {
			watchdog.Reset(d.opts.StallTimeout)
			if _, err := d.f.Write(buf[:n]); err != nil {
				return permanent{err}
			}
			d.h.Write(buf[:n])
			d.done += int64(n)
			if d.opts.Progress != nil {
				d.opts.Progress(d.done, d.total)
			}
		}
		if rerr == io.EOF {
			if d.total >= 0 && d.done != d.total {
				return fmt.Errorf("connection closed at byte %d of %d", d.done, d.total)
			}
			return nil
		}
		if rerr != nil {
			return d.cause(actx, rerr)
		}
	}
}

// cause explains an I/O error: a stall, the caller's cancellation, or the
// network error itself (transient).
func (d *transfer) cause(actx context.Context, err error) error {
	if errors.Is(context.Cause(actx), errStall) {
		return fmt.Errorf("no data for %s at byte %d: %w", d.opts.StallTimeout, d.done, errStall)
	}
	return err
}

func (d *transfer) restart() error {
	if err := d.f.Truncate(0); err != nil {
		return err
	}
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	d.h.Reset()
	d.done = 0
	return nil
}

// checkSize refuses a file of n bytes (-1: unknown) beyond the cap.
func (d *transfer) checkSize(n int64) error {
	if n > d.opts.MaxBytes {
		return permanent{fmt.Errorf("file larger than the %d-byte cap (--max-download-bytes)", d.opts.MaxBytes)}
	}
	return nil
}

// verify checks the digest. A mismatch says nothing of what was received: a
// source may be any URL, and the digest or size of an internal one is
// information the requester must not get.
func (d *transfer) verify() error {
	d.sum = hex.EncodeToString(d.h.Sum(nil))
	if want := strings.ToLower(d.opts.SHA256); want != "" && want != d.sum {
		return permanent{MismatchError(want)}
	}
	return nil
}

// MismatchError is the error for content that does not hash to want. It
// names the expected digest only.
func MismatchError(want string) error {
	return fmt.Errorf("sha256 mismatch: expected sha256 %s, the download did not match", want)
}

// client returns the configured client with a redirect policy that sets the
// bearer token for Hugging Face hosts and removes it everywhere else.
func (d *transfer) client() *http.Client {
	c := *d.httpc
	prev := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if _, err := d.guard.checkName(req.URL.Hostname()); err != nil {
			return err
		}
		d.authorize(req)
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &c
}

func (d *transfer) authorize(req *http.Request) {
	if d.opts.Token != "" && IsHFHost(req.URL.Host, d.opts.HFEndpoint) {
		req.Header.Set("Authorization", "Bearer "+d.opts.Token)
	} else {
		req.Header.Del("Authorization")
	}
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}
