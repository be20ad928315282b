package main

// The stage subcommand: `whisper-encoder stage` (a child process per run) side
// by side with the seed pipeline (testdata/gen/seed_pipeline.py), and on a
// synthesized large-v3-sized model against reading and hashing its bytes.

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
)

// measurement is one child process run.
type measurement struct {
	wall  time.Duration
	cpu   time.Duration // user + system
	maxKB int64
}

func runBenchStage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stage", flag.ContinueOnError)
	cacheRoot := os.Getenv("XDNA_CACHE")
	if cacheRoot == "" {
		cacheRoot = "/var/cache/xdna-whisper"
	}
	model := fs.String("model", filepath.Join(cacheRoot, "fixtures", "whisper-base-fp32.onnx"), "fp32 ONNX export to stage (make bench-model)")
	runs := fs.Int("runs", 5, "runs per pipeline (the median and best are reported)")
	python := fs.String("python", "/usr/bin/python3", "Python with torch and onnx for the seed pipeline (\"\" to skip)")
	seed := fs.String("seed-script", "testdata/gen/seed_pipeline.py", "the seed pipeline script")
	large := fs.String("large", "", "also stage a large-v3-sized external-data model synthesized from this graph-only export (.onnx or .onnx.gz)")
	work := fs.String("work", filepath.Join(cacheRoot, "bench"), "folder for synthesized models and caches")
	encoder := fs.String("encoder", defaultEncoder(), "the whisper-encoder binary whose stage subcommand is measured")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 || *runs < 1 {
		return usageError{errors.New("stage takes flags only, --runs ≥ 1")}
	}
	bin, err := exec.LookPath(*encoder)
	if err != nil {
		return fmt.Errorf("the whisper-encoder binary (--encoder): %w", err)
	}
	if err := os.MkdirAll(*work, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(*model); err != nil {
		return fmt.Errorf("benchmark model: %w (make bench-model creates it)", err)
	}
	st, _ := os.Stat(*model)
	fmt.Printf("staging %s (%.1f MB), %d runs each, GOMAXPROCS %d\n", *model, float64(st.Size())/1e6, *runs, stageProcs())
	ours, err := repeat(ctx, *runs, *work, func(cache string) *exec.Cmd {
		return exec.CommandContext(ctx, bin, "stage", "--source", *model, "--cache", cache)
	})
	if err != nil {
		return err
	}
	stageReport("whisper-encoder stage", ours, 0, 0)
	if *python != "" {
		if _, err := os.Stat(*seed); err == nil {
			theirs, err := repeat(ctx, *runs, *work, func(dir string) *exec.Cmd {
				return exec.CommandContext(ctx, *python, *seed, *model, filepath.Join(dir, "seed.pt"))
			})
			if err != nil {
				return fmt.Errorf("seed pipeline: %w", err)
			}
			stageReport("seed pipeline (python)", theirs, 0, 0)
			fmt.Printf("ratio seed/ours: wall %.1fx, CPU %.1fx, peak RSS %.1fx (medians)\n",
				stageMedian(theirs, wallOf)/stageMedian(ours, wallOf), stageMedian(theirs, cpuOf)/stageMedian(ours, cpuOf),
				stageMedian(theirs, rssOf)/stageMedian(ours, rssOf))
		} else {
			fmt.Printf("seed pipeline skipped: %s not found (run from the repository root)\n", *seed)
		}
	}
	if *large != "" {
		return benchLarge(ctx, bin, *large, *work, *runs)
	}
	return nil
}

// repeat runs the command made by mk in a fresh folder n times.
func repeat(ctx context.Context, n int, work string, mk func(dir string) *exec.Cmd) ([]measurement, error) {
	var out []measurement
	for range n {
		dir, err := os.MkdirTemp(work, "run-")
		if err != nil {
			return nil, err
		}
		cmd := mk(dir)
		cmd.Stderr = io.Discard
		start := time.Now()
		err = cmd.Run()
		wall := time.Since(start)
		_ = os.RemoveAll(dir) // best effort: a scratch directory under --work
		if err != nil {
			return nil, fmt.Errorf("%v: %w", cmd.Args, err)
		}
		ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		m := measurement{wall: wall}
		if ru != nil {
			m.maxKB = ru.Maxrss
			m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		out = append(out, m)
	}
	return out, nil
}

func wallOf(m measurement) float64 { return m.wall.Seconds() }
func cpuOf(m measurement) float64  { return m.cpu.Seconds() }
func rssOf(m measurement) float64  { return float64(m.maxKB) }

func stageMedian(ms []measurement, f func(measurement) float64) float64 {
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func stageReport(name string, ms []measurement, bytes int64, _ int) {
	best := slices.MinFunc(ms, func(a, b measurement) int { return int(a.wall - b.wall) })
	line := fmt.Sprintf("%-24s wall median %.3f s (best %.3f s)   CPU median %.3f s   peak RSS median %.1f MB (max %.1f MB)",
		name, stageMedian(ms, wallOf), best.wall.Seconds(), stageMedian(ms, cpuOf), stageMedian(ms, rssOf)/1024,
		float64(slices.MaxFunc(ms, func(a, b measurement) int { return int(a.maxKB - b.maxKB) }).maxKB)/1024)
	if bytes > 0 {
		line += fmt.Sprintf("   %.0f MB/s", float64(bytes)/1e6/stageMedian(ms, wallOf))
	}
	fmt.Println(line)
}

func stageProcs() int { return runtime.GOMAXPROCS(0) }

// defaultEncoder is whisper-encoder next to this executable (make builds both
// into bin/), else whisper-encoder on PATH.
func defaultEncoder() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "whisper-encoder")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "whisper-encoder"
}

// benchLarge synthesizes the payload of a graph-only large export (random
// float32 in ±0.05 at every tensor's offset), then stages it and compares
// the throughput with reading and hashing the same bytes.
func benchLarge(ctx context.Context, bin, graph, work string, runs int) error {
	dir := filepath.Join(work, "large")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	model := filepath.Join(dir, "model.onnx")
	if err := copyGraph(graph, model); err != nil {
		return err
	}
	total, err := synthesize(model)
	if err != nil {
		return err
	}
	fmt.Printf("\nlarge model %s: %.2f GB of synthesized external data\n", model, float64(total)/1e9)
	readOnly, err := repeat(ctx, 1, work, func(string) *exec.Cmd {
		return exec.CommandContext(ctx, "sha256sum", filepath.Join(dir, externalName(model)))
	})
	if err != nil {
		return err
	}
	stageReport("read+sha256 (sha256sum)", readOnly, total, 0)
	goHash, err := hashOnce(filepath.Join(dir, externalName(model)))
	if err != nil {
		return err
	}
	stageReport("read+sha256 (Go, in process)", []measurement{goHash}, total, 0)
	ours, err := repeat(ctx, max(1, runs/2), work, func(cache string) *exec.Cmd {
		return exec.CommandContext(ctx, bin, "stage", "--source", model, "--cache", cache)
	})
	if err != nil {
		return err
	}
	stageReport("whisper-encoder stage", ours, total, 0)
	fmt.Printf("ratio stage/read throughput: %.2f (sha256sum), %.2f (Go)\n",
		stageMedian(readOnly, wallOf)/stageMedian(ours, wallOf), goHash.wall.Seconds()/stageMedian(ours, wallOf))
	return nil
}

// hashOnce reads and hashes a file in this process: the floor a stager that
// must hash its source cannot beat.
func hashOnce(path string) (measurement, error) {
	f, err := os.Open(path)
	if err != nil {
		return measurement{}, err
	}
	defer f.Close()
	var before, after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		return measurement{}, err
	}
	start := time.Now()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return measurement{}, err
	}
	wall := time.Since(start)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		return measurement{}, err
	}
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	return measurement{wall: wall, cpu: cpu, maxKB: after.Maxrss}, nil
}

// copyGraph copies (gunzipping a .gz) the graph-only export to dst.
func copyGraph(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if filepath.Ext(src) == ".gz" {
		z, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		r = z
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		_ = out.Close() // the copy's error is the one to report
		return err
	}
	return out.Close()
}

func externalName(model string) string {
	m, err := onnx.Open(model)
	if err != nil {
		return ""
	}
	defer m.Close()
	for _, t := range m.Graph.Initializers {
		if t.Storage == onnx.StorageExternal {
			return t.External.Location
		}
	}
	return ""
}

// synthesize writes the external-data file the graph names, with random
// float32 values at each FLOAT tensor's range (others zero), unless a file of
// the right size is already there. It returns the file's size.
func synthesize(model string) (int64, error) {
	m, err := onnx.Open(model)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	var loc string
	var size int64
	for _, t := range m.Graph.Initializers {
		if t.Storage != onnx.StorageExternal {
			continue
		}
		if loc != "" && t.External.Location != loc {
			return 0, fmt.Errorf("tensor %s: a second external file %s", t.Name, t.External.Location)
		}
		loc = t.External.Location
		size = max(size, t.External.Offset+t.External.Length)
	}
	if loc == "" {
		return 0, fmt.Errorf("%s has no external data", model)
	}
	path := filepath.Join(m.Dir(), loc)
	if st, err := os.Stat(path); err == nil && st.Size() == size {
		return size, nil
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return 0, err
	}
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4<<20)
	for _, t := range m.Graph.Initializers {
		if t.Storage != onnx.StorageExternal || t.DataType != onnx.Float {
			continue
		}
		for off := int64(0); off < t.External.Length; off += int64(len(buf)) {
			n := min(int64(len(buf)), t.External.Length-off)
			for i := int64(0); i < n; i += 4 {
				v := math.Float32bits(float32(rng.Float64()*0.1 - 0.05))
				buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			}
			if _, err := f.WriteAt(buf[:n], t.External.Offset+off); err != nil {
				_ = f.Close() // the write's error is the one to report
				return 0, err
			}
		}
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return size, os.Rename(path+".tmp", path)
}
