// Package convert turns a Whisper encoder ONNX export (fp32, fp16, dynamic
// int8/uint8 or 4-bit MatMulNBits; weights inline, in typed fields or in
// external data) into a staged directory (package staged): BF16 tensors under
// canonical Hugging Face names, found through the graph rather than by name,
// with the encoder's config inferred from shapes and graph constants.
//
// A whole model in Hugging Face's layout (a directory or hf://ORG/REPO[@REV]:
// config.json, model.safetensors or its shards, tokenizer and generation
// files) is staged with its decoder and tokenizer (see repo.go); its encoder
// is written exactly as the ONNX path writes it. So is a repository in the
// onnx-community layout (onnx/encoder_model*.onnx and a decoder export, no
// safetensors), whose decoder tensors are found by the structure of the
// decoder graph (repo_onnx.go, decoder_graph.go).
//
// Output goes to <cache>/<key>, the content key of the source bytes, target
// precision and format version; it is written into a temporary sibling and
// renamed into place, so concurrent stagers of the same source both succeed
// and a killed one leaves nothing that looks complete.
package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/download"
	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// Options configure one staging run.
type Options struct {
	// Source is an encoder ONNX file (a path, an http(s) URL or
	// hf://ORG/REPO/PATH[@REV]) or a whole model repository in Hugging Face's
	// or onnx-community's layout (a directory or hf://ORG/REPO[@REV]).
	Source string
	// SHA256 is the expected hex sha256 of the source ONNX file (optional).
	SHA256 string
	// CacheDir holds staged directories (required).
	CacheDir string
	// Heads overrides the inferred attention head count when > 0.
	Heads int
	// ConverterVersion is recorded in the manifest (default "dev").
	ConverterVersion string
	// Workers is the number of conversion goroutines (default GOMAXPROCS).
	Workers int
	// Progress, if set, receives progress reports; it is called from several
	// goroutines at once (hashing runs beside the conversion workers).
	Progress func(Progress)
	// Logger receives structured log lines (default slog.Default()).
	Logger *slog.Logger
	// Download configures fetching URL sources (SHA256 and Progress are set
	// by Stage).
	Download download.Options
	// NoSync skips fsync before the rename (tests and benchmarks on
	// throwaway caches).
	NoSync bool
}

// Progress reports the bytes done and total of one phase: "download",
// "hash" (reading the source for its content key) or "convert".
type Progress struct {
	Phase       string
	Done, Total int64
}

// Result describes a staged directory.
type Result struct {
	// Key is the content key; Dir is <cache>/<key>.
	Key, Dir string
	// SourceSHA256 is the hex sha256 of the source ONNX file.
	SourceSHA256 string
	// SourcePrecision is the precision of the source weights; Lossy is true
	// unless it is float32.
	SourcePrecision staged.Precision
	Lossy           bool
	// SizeBytes is the size of the staged directory's files.
	SizeBytes int64
	// StagedAt is when the directory was written.
	StagedAt time.Time
	// Existing is true when the directory was already in the cache.
	Existing bool
	// Config is the encoder configuration.
	Config staged.Config
	// Capabilities is what the staged entry can serve.
	Capabilities staged.Capabilities
	// Decoder is true when the entry holds a text decoder (a whole model).
	Decoder bool
}

func (o *Options) defaults() {
	if o.ConverterVersion == "" {
		o.ConverterVersion = "dev"
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Progress == nil {
		o.Progress = func(Progress) {}
	}
}

// Stage stages opts.Source into opts.CacheDir and returns the staged
// directory. Staging a source that is already staged is a no-op.
func Stage(ctx context.Context, opts Options) (Result, error) {
	opts.defaults()
	if opts.CacheDir == "" {
		return Result{}, errors.New("stage: no cache directory")
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("stage: cache: %w", err)
	}
	removeStale(opts.CacheDir, opts.Logger)
	if repoSource(opts.Source) {
		return stageRepo(ctx, opts)
	}
	path, cleanup, err := fetchSource(ctx, &opts)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	m, err := onnx.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("stage %s: %w", opts.shown(), opaqueParseError(&opts, err))
	}
	defer m.Close()
	if isURL(opts.Source) {
		if err := fetchExternal(ctx, &opts, m); err != nil {
			return Result{}, err
		}
	}
	p, err := plan(m, opts.Heads)
	if err == nil {
		err = p.checkExternal(m)
	}
	if err != nil {
		return Result{}, fmt.Errorf("stage %s: %w", opts.shown(), err)
	}
	return run(ctx, &opts, m, p)
}

// errNotONNX replaces the parse error of a downloaded file that no digest vouches for.
var errNotONNX = errors.New("the downloaded file is not a valid ONNX model (parse details are not shown for an unpinned URL, which may point anywhere: set the source's sha256 to see them)")

// opaqueParseError keeps what the stager says about an arbitrary URL's content to "not ONNX":
// a parse error quotes values read from the body, which would let whoever creates a
// WhisperEncoder probe internal URLs through the stager. Files and pinned (sha256-checked)
// downloads keep the details.
func opaqueParseError(opts *Options, err error) error {
	if isURL(opts.Source) && opts.SHA256 == "" {
		return errNotONNX
	}
	return err
}

// shown is the source as errors, logs and the manifest show it: credentials
// a URL carries (a signed URL's query, userinfo) are masked.
func (o *Options) shown() string { return redact.URL(o.Source) }

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "hf://")
}

// fetchSource returns a local path for the source, downloading URL sources
// into a temporary folder of the cache.
func fetchSource(ctx context.Context, opts *Options) (string, func(), error) {
	if !isURL(opts.Source) {
		return opts.Source, func() {}, nil
	}
	dir, unlock, err := lockedTemp(opts.CacheDir, downloadPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("stage: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir); unlock() } // best effort: removeStale deletes what is left
	name := sourceName(opts.Source)
	dl := opts.Download
	dl.SHA256 = opts.SHA256
	dl.Logger = opts.Logger
	dl.Progress = func(done, total int64) { opts.Progress(Progress{"download", done, total}) }
	if _, err := download.File(ctx, opts.Source, filepath.Join(dir, name), dl); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("stage: %w", err)
	}
	return filepath.Join(dir, name), cleanup, nil
}

// sourceName is the file name of a URL or hf:// source (without query or @REV).
func sourceName(src string) string {
	var p string
	if rest, ok := strings.CutPrefix(src, "hf://"); ok {
		if i := strings.LastIndexByte(rest, '@'); i >= 0 {
			rest = rest[:i]
		}
		if parts := strings.SplitN(rest, "/", 3); len(parts) == 3 {
			p = parts[2]
		}
	} else if u, err := url.Parse(src); err == nil {
		p = u.Path
	}
	name := path.Base(p)
	if p == "" || strings.HasSuffix(p, "/") || !filepath.IsLocal(name) {
		return "model.onnx"
	}
	return name
}

// fetchExternal downloads the external-data files a downloaded model names,
// from URLs relative to the model's.
func fetchExternal(ctx context.Context, opts *Options, m *onnx.Model) error {
	seen := map[string]bool{}
	for _, t := range m.Graph.Initializers {
		loc := t.External.Location
		if t.Storage != onnx.StorageExternal || seen[loc] {
			continue
		}
		seen[loc] = true
		if !filepath.IsLocal(loc) || strings.Contains(loc, "/") {
			return fmt.Errorf("stage %s: tensor %q: external data location %q must be a file name next to the model", opts.shown(), t.Name, loc)
		}
		u := siblingURL(opts.Source, loc)
		dl := opts.Download
		dl.SHA256 = ""
		dl.Logger = opts.Logger
		dl.Progress = func(done, total int64) { opts.Progress(Progress{"download", done, total}) }
		if _, err := download.File(ctx, u, filepath.Join(m.Dir(), loc), dl); err != nil {
			return fmt.Errorf("stage %s: external data of tensor %q: %w", opts.shown(), t.Name, err)
		}
	}
	return nil
}

// siblingURL replaces the last path element of a URL or hf:// reference.
func siblingURL(src, name string) string {
	base, rev, hasRev := src, "", false
	if strings.HasPrefix(src, "hf://") {
		if i := strings.LastIndexByte(src, '@'); i >= 0 {
			base, rev, hasRev = src[:i], src[i:], true
		}
	} else if i := strings.IndexByte(src, '?'); i >= 0 {
		base = src[:i]
	}
	out := base[:strings.LastIndexByte(base, '/')+1] + name
	if hasRev {
		out += rev
	}
	return out
}

// staging is what plan learns from the graph before any payload is read.
type staging struct {
	config    staged.Config
	weights   []*weight // in canonical order
	precision staged.Precision
}

// plan identifies every tensor and infers the config without reading
// payloads (it reads only small graph constants).
func plan(m *onnx.Model, heads int) (*staging, error) {
	g := newGraph(m)
	ws, err := identify(g)
	if err != nil {
		return nil, err
	}
	cfg, err := inferConfig(g, ws, heads)
	if err != nil {
		return nil, err
	}
	s := &staging{config: cfg, precision: precisionOf(ws)}
	for _, sp := range cfg.Tensors() {
		s.weights = append(s.weights, ws[sp.Name])
	}
	return s, nil
}

// checkExternal maps the external-data files and checks that every tensor's
// range lies inside its file, before anything is written; it reads nothing.
func (s *staging) checkExternal(m *onnx.Model) error {
	for _, w := range s.weights {
		for _, t := range []*onnx.Tensor{w.tensor, w.scale, w.zeroPoint} {
			if t != nil && t.Storage == onnx.StorageExternal {
				if _, _, err := m.Bytes(t); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// hashFile returns the hex sha256 and size of a file, reporting progress.
func hashFile(ctx context.Context, path string, report func(done int64)) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", n, err
		}
		k, err := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		report(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", n, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
