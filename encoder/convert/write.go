package convert

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/xdna-whisper/xdna-whisper/encoder/download"
	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
	"golang.org/x/sys/unix"
)

// Prefixes of the cache's temporary entries; a staged directory's name is
// its key (hex), so it never starts with a dot.
const (
	tmpPrefix      = ".tmp-"
	downloadPrefix = ".download-"
)

// sourceHash is the content of the source files: the ONNX file first, then
// each external-data file.
type sourceHash struct {
	onnx     staged.SourceFile
	external []staged.SourceFile
	err      error
}

func (s sourceHash) key() string {
	sums := []string{s.onnx.SHA256}
	for _, e := range s.external {
		sums = append(sums, e.SHA256)
	}
	return staged.Key(staged.BFloat16, sums...)
}

// externalFiles lists the external-data files the model uses, sorted.
func externalFiles(m *onnx.Model) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range m.Graph.Initializers {
		if t.Storage == onnx.StorageExternal && !seen[t.External.Location] {
			seen[t.External.Location] = true
			out = append(out, t.External.Location)
		}
	}
	sort.Strings(out)
	return out
}

// hashSources hashes the model file and its external-data files.
func hashSources(ctx context.Context, m *onnx.Model, opts *Options) sourceHash {
	var total int64
	files := externalFiles(m)
	paths := []string{m.Path}
	for _, loc := range files {
		paths = append(paths, filepath.Join(m.Dir(), loc))
	}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			total += st.Size()
		}
	}
	var s sourceHash
	var base int64
	for i, p := range paths {
		sum, n, err := hashFile(ctx, p, func(done int64) { opts.Progress(Progress{"hash", base + done, total}) })
		if err != nil {
			s.err = fmt.Errorf("hash %s: %w", p, err)
			return s
		}
		base += n
		if i == 0 {
			s.onnx = staged.SourceFile{Name: filepath.Base(p), SHA256: sum, Size: n}
		} else {
			s.external = append(s.external, staged.SourceFile{Name: files[i-1], SHA256: sum, Size: n})
		}
	}
	return s
}

// run converts the planned tensors into a temporary directory while the
// source is hashed, then renames it to <cache>/<key>.
func run(ctx context.Context, opts *Options, m *onnx.Model, p *staging) (Result, error) {
	tmp, unlock, err := lockedTemp(opts.CacheDir, tmpPrefix)
	if err != nil {
		return Result{}, fmt.Errorf("stage: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp) // best effort: removeStale deletes what is left
		}
		unlock()
	}()

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hashed := make(chan sourceHash, 1)
	var existing atomic.Value // string: a valid staged dir with our key
	go func() {
		h := hashSources(cctx, m, opts)
		if h.err == nil {
			if dir := filepath.Join(opts.CacheDir, h.key()); isStaged(dir) {
				existing.Store(dir)
				cancel(errAlreadyStaged)
			}
		}
		hashed <- h
	}()

	records, fileSize, convErr := writeWeights(cctx, opts, m, p, filepath.Join(tmp, staged.WeightsFile))
	h := <-hashed
	if h.err != nil {
		return Result{}, fmt.Errorf("stage %s: %w", opts.shown(), h.err)
	}
	if want := strings.ToLower(opts.SHA256); want != "" && want != h.onnx.SHA256 {
		return Result{}, fmt.Errorf("stage %s: %w", opts.shown(), download.MismatchError(want))
	}
	key := h.key()
	final := filepath.Join(opts.CacheDir, key)
	if dir, ok := existing.Load().(string); ok {
		return existingResult(dir, p)
	}
	if convErr != nil {
		return Result{}, fmt.Errorf("stage %s: %w", opts.shown(), convErr)
	}
	man := manifest(opts, m, p, h, key, records, fileSize)
	size, err := writeMeta(tmp, p.config, &man, !opts.NoSync, 0)
	if err != nil {
		return Result{}, fmt.Errorf("stage %s: %w", opts.shown(), err)
	}
	if err := os.Rename(tmp, final); err != nil {
		if isStaged(final) { // another stager won the race
			return existingResult(final, p)
		}
		return Result{}, fmt.Errorf("stage %s: rename %s to %s: %w", opts.shown(), tmp, final, err)
	}
	committed = true
	if !opts.NoSync {
		if err := syncDir(opts.CacheDir); err != nil {
			return Result{}, fmt.Errorf("stage %s: %w", opts.shown(), err)
		}
	}
	if p.precision.Lossy() {
		opts.Logger.Warn("lossy source: BF16 weights staged from a "+string(p.precision)+" export differ from those of the fp32 original",
			"source", opts.shown(), "precision", p.precision)
	}
	return Result{
		Key: key, Dir: final, SourceSHA256: h.onnx.SHA256, SourcePrecision: p.precision, Lossy: p.precision.Lossy(),
		SizeBytes: size, StagedAt: man.StagedAt, Config: p.config, Capabilities: man.Capabilities,
	}, nil
}

var errAlreadyStaged = errors.New("already staged")

// isStaged reports whether dir is a valid staged directory.
func isStaged(dir string) bool {
	md, err := staged.Open(dir)
	if err != nil {
		return false
	}
	_ = md.Close() // read only: nothing to flush
	return true
}

func existingResult(dir string, p *staging) (Result, error) {
	md, err := staged.Open(dir)
	if err != nil {
		return Result{}, err
	}
	defer md.Close()
	man := md.Manifest()
	return Result{
		Key: man.Key, Dir: dir, SourceSHA256: man.SourceSHA256, SourcePrecision: man.SourcePrecision,
		Lossy: man.LossySource, SizeBytes: man.Sizes.FileBytes, StagedAt: man.StagedAt, Existing: true, Config: md.Config(),
		Capabilities: md.Capabilities(), Decoder: md.HasDecoder(),
	}, nil
}

// writeWeights converts every tensor into the safetensors file at path with
// opts.Workers goroutines, each writing its tensors at their offsets.
func writeWeights(ctx context.Context, opts *Options, m *onnx.Model, p *staging, path string) ([]staged.TensorRecord, int64, error) {
	infos := make([]safetensors.TensorInfo, len(p.weights))
	for i, w := range p.weights {
		infos[i] = safetensors.TensorInfo{Name: w.name, DType: safetensors.BF16, Shape: w.shape()}
	}
	layout, err := safetensors.Plan(infos, map[string]string{"format": "pt", "xdna_whisper_format": fmt.Sprint(staged.FormatVersion)})
	if err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if err := f.Truncate(layout.Size()); err != nil {
		return nil, 0, err
	}
	if _, err := f.WriteAt(layout.Header, 0); err != nil {
		return nil, 0, err
	}
	order := make([]int, len(p.weights))
	var total int64
	for i := range order {
		order[i] = i
		total += sourceBytes(p.weights[i])
	}
	sort.SliceStable(order, func(a, b int) bool {
		return layout.Tensors[order[a]].End-layout.Tensors[order[a]].Begin > layout.Tensors[order[b]].End-layout.Tensors[order[b]].Begin
	})
	jobs := make(chan int)
	records := make([]staged.TensorRecord, len(p.weights))
	var done atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf buffers
			var out []uint16
			for i := range jobs {
				ti := layout.Tensors[i]
				n := int((ti.End - ti.Begin) / 2)
				if cap(out) < n {
					out = make([]uint16, n)
				}
				rec, err := convertOne(m, p.weights[i], out[:n], &buf)
				if err == nil {
					_, err = f.WriteAt(leBytes(out[:n]), layout.DataOffset()+ti.Begin)
				}
				if err != nil {
					fail(err)
					continue
				}
				records[i] = rec
				opts.Progress(Progress{"convert", done.Add(sourceBytes(p.weights[i])), total})
			}
		}()
	}
feed:
	for _, i := range order {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = context.Cause(ctx)
	}
	if firstErr == nil && !opts.NoSync {
		firstErr = f.Sync()
	}
	// Without Sync (NoSync) a failed write-back (NFS) shows only here; the
	// deferred Close then does nothing.
	if err := f.Close(); firstErr == nil {
		firstErr = err
	}
	return records, layout.Size(), firstErr
}

// sourceBytes is the size of w's payload in the source.
func sourceBytes(w *weight) int64 {
	n := w.tensor.ByteSize()
	if w.scale != nil {
		n += w.scale.ByteSize()
	}
	return n
}

// convertOne converts one tensor, hashes the result and lets the source pages go.
func convertOne(m *onnx.Model, w *weight, out []uint16, buf *buffers) (staged.TensorRecord, error) {
	stats, err := convert(m, w, out, buf)
	m.Release(w.tensor)
	if err != nil {
		return staged.TensorRecord{}, err
	}
	sum := sha256.Sum256(leBytes(out))
	return staged.TensorRecord{
		Name: w.name, Shape: w.shape(), DType: string(safetensors.BF16), SHA256: hex.EncodeToString(sum[:]),
		Source: w.tensor.Name, SourceDType: w.tensor.DataType.String(), Node: w.node, IdentifiedBy: w.via, Transposed: w.transposed,
		Error: stats,
	}, nil
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// leBytes is the little-endian byte form of v: a view on little-endian hosts.
func leBytes(v []uint16) []byte {
	if len(v) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 2*len(v))
	}
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

func manifest(opts *Options, m *onnx.Model, p *staging, h sourceHash, key string, records []staged.TensorRecord, fileSize int64) staged.Manifest {
	sizes := staged.SizesOf(p.config)
	producer := strings.TrimSpace(m.ProducerName + " " + m.ProducerVersion)
	return staged.Manifest{
		FormatVersion: staged.FormatVersion, Key: key, Source: opts.shown(),
		SourceSHA256: h.onnx.SHA256, SourceSize: h.onnx.Size, ExternalData: h.external,
		SourcePrecision: p.precision, LossySource: p.precision.Lossy(), Precision: staged.BFloat16,
		ConverterVersion: opts.ConverterVersion, OpsetVersion: m.Opsets[""], Producer: producer,
		StagedAt: time.Now().UTC().Truncate(time.Second), Tensors: records, Sizes: sizes,
		Capabilities: staged.Capabilities{Encode: true},
	}
}

// writeMeta writes config.json and manifest.json (with the total size) and
// returns the directory's size; extra counts files beside model.safetensors
// written before (a whole model's decoder and copied files).
func writeMeta(dir string, cfg staged.Config, man *staged.Manifest, sync bool, extra int64) (int64, error) {
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(filepath.Join(dir, staged.WeightsFile))
	if err != nil {
		return 0, err
	}
	// The manifest records the directory size, its own included: iterate to a fixed point.
	size := st.Size() + extra + int64(len(cfgJSON)+1)
	var manJSON []byte
	for range 4 {
		man.Sizes.FileBytes = size + int64(len(manJSON)+1)
		if manJSON, err = json.MarshalIndent(man, "", "  "); err != nil {
			return 0, err
		}
		if man.Sizes.FileBytes == size+int64(len(manJSON)+1) {
			break
		}
	}
	if err := writeFile(filepath.Join(dir, staged.ConfigFile), append(cfgJSON, '\n'), sync); err != nil {
		return 0, err
	}
	if err := writeFile(filepath.Join(dir, staged.ManifestFile), append(manJSON, '\n'), sync); err != nil {
		return 0, err
	}
	return size + int64(len(manJSON)+1), nil
}

func writeFile(path string, b []byte, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the write error is the one to report
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			_ = f.Close() // the sync error is the one to report
			return err
		}
	}
	return f.Close()
}

// syncDir makes the entries of dir durable (a rename into it): unsynced, a crash
// could lose what was just published.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// newPrefix names a temporary directory before it is locked.
const newPrefix = ".new-"

// lockedTemp creates a temporary directory in cache and holds an exclusive
// flock on it until unlock, so removeStale can tell live ones from leftovers
// of killed stagers. The directory is created under a ".new-" name, locked,
// then renamed to prefix…, so no other stager sees it unlocked.
func lockedTemp(cache, prefix string) (string, func(), error) {
	fresh, err := os.MkdirTemp(cache, newPrefix)
	if err != nil {
		return "", nil, err
	}
	fd, err := unix.Open(fresh, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != nil {
			_ = unix.Close(fd) // a read-only directory descriptor: nothing to flush
		}
	}
	if err != nil {
		_ = os.RemoveAll(fresh) // best effort: removeStale deletes what is left
		return "", nil, fmt.Errorf("temporary directory %s: %w", fresh, err)
	}
	dir := filepath.Join(cache, prefix+strings.TrimPrefix(filepath.Base(fresh), newPrefix))
	if err := os.Rename(fresh, dir); err != nil {
		_ = unix.Close(fd)      // a read-only directory descriptor: nothing to flush
		_ = os.RemoveAll(fresh) // best effort: removeStale deletes what is left
		return "", nil, fmt.Errorf("temporary directory %s: %w", fresh, err)
	}
	return dir, func() { _ = unix.Close(fd) }, nil // closing drops the lock; nothing to flush
}

// removeStale deletes temporary entries of the cache that no live process
// holds locked: the leftovers of stagers that were killed mid-way.
func removeStale(cache string, log *slog.Logger) {
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || (!strings.HasPrefix(name, tmpPrefix) && !strings.HasPrefix(name, downloadPrefix) && !strings.HasPrefix(name, newPrefix)) {
			continue
		}
		if strings.HasPrefix(name, newPrefix) { // killed between MkdirTemp and its rename
			if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < 10*time.Minute {
				continue
			}
		}
		dir := filepath.Join(cache, name)
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == nil {
			if err := os.RemoveAll(dir); err != nil {
				log.Warn("cannot remove the leftovers of an interrupted staging", "dir", dir, "err", err)
			} else {
				log.Info("removed the leftovers of an interrupted staging", "dir", dir)
			}
		} else if !errors.Is(err, syscall.EWOULDBLOCK) {
			log.Warn("cannot check temporary directory", "dir", dir, "err", err)
		}
		_ = unix.Close(fd) // a read-only directory descriptor: nothing to flush
	}
}
