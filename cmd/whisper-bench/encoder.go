package main

// The encoder subcommand: the CPU encoder's speed and memory, and an A/B
// against ONNX Runtime (testdata/ort/bench.js) on the same input.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xdna-whisper/xdna-whisper/cmd/internal/encodercli"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
)

type benchFlags struct {
	mf                          encodercli.ModelFlags
	batch, iters, round         *int
	in, ort, ortScript, compare *string
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("encoder", flag.ContinueOnError)
	bf := benchFlags{
		mf:        encodercli.AddModelFlags(fs),
		batch:     fs.Int("batch", 1, "windows per Encode call"),
		iters:     fs.Int("iterations", 5, "timed Encode calls (after one warm-up call)"),
		round:     fs.Int("rounds", 7, "with --ort: alternating Go/ORT rounds"),
		in:        fs.String("in", "", "log-mel .npy input (default: seeded log-mel-like noise)"),
		ort:       fs.String("ort", "", "also run this ONNX file (the one the weights were staged from) in ONNX Runtime, alternating A/B"),
		ortScript: fs.String("ort-script", "testdata/ort/bench.js", "the onnxruntime-node side of --ort"),
		compare: fs.String("compare", "", "with --ort: these kernel families (comma-separated, or all: every one this CPU runs) "+
			"take turns with ONNX Runtime in the same rounds, and a table compares them"),
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *bf.mf.Weights == "" || fs.NArg() > 0 {
		return usageError{errors.New("want --weights and no arguments (see -h)")}
	}
	if *bf.batch < 1 || *bf.iters < 1 || *bf.round < 1 {
		return usageError{errors.New("--batch, --iterations and --rounds must be ≥ 1")}
	}
	if *bf.compare != "" && *bf.ort == "" {
		return usageError{errors.New("--compare needs --ort")}
	}
	if *bf.mf.Threads > 0 {
		runtime.GOMAXPROCS(*bf.mf.Threads)
	}
	before := readRSS()
	loadCPU := processCPU()
	enc, loadTime, err := bf.mf.Load()
	if err != nil {
		return err
	}
	defer enc.Close()
	loadCPU = processCPU() - loadCPU
	cfg := enc.Config()
	mel, err := benchInput(*bf.in, cfg.NumMelBins, 2*cfg.MaxSourcePositions)
	if err != nil {
		return err
	}
	batch := mel
	if *bf.batch > 1 {
		batch = model.Tensor{Shape: []int{*bf.batch, mel.Shape[1], mel.Shape[2]}, Data: slices.Repeat(mel.Data, *bf.batch)}
	}
	fmt.Printf("machine: %d CPUs, load average %s (timings on a shared machine are noisy; the A/B alternates rounds)\n", runtime.NumCPU(), loadAvg())
	fmt.Printf("model: d_model %d, %d layers, %d heads, ffn %d, %d mels, %d positions; %.2f GFLOP per window\n",
		cfg.DModel, cfg.EncoderLayers, cfg.EncoderAttentionHeads, cfg.EncoderFFNDim, cfg.NumMelBins, cfg.MaxSourcePositions, model.FLOPs(cfg)/1e9)
	loaded := readRSS()
	fmt.Printf("kernels: %s (%s; this CPU runs up to %s: %s)\n", enc.Kernels(), chosenHow(*bf.mf.Kernels), kernels.Detect(), cpuName())
	fmt.Printf("backend: %s, %d threads, packed weights %.1f MB, loaded in %.0f ms (%.0f ms CPU); after load: RSS %.1f MB, peak %.1f MB\n",
		enc.Backend(), enc.Threads(), float64(enc.PackedBytes())/1e6, ms(loadTime), ms(loadCPU), loaded.rss, loaded.peak)
	// One output buffer for every call (EncodeInto), as a server reusing its
	// buffers would: steady state allocates nothing per window.
	out := make([]float32, *bf.batch*cfg.MaxSourcePositions*cfg.DModel)
	if err := enc.EncodeInto(ctx, out, batch); err != nil { // warm-up
		return err
	}
	enc.ResetOpTimes()
	times := make([]float64, *bf.iters)
	for i := range times {
		t := time.Now()
		if err := enc.EncodeInto(ctx, out, batch); err != nil {
			return err
		}
		times[i] = ms(time.Since(t)) / float64(*bf.batch)
	}
	windows := *bf.iters * *bf.batch
	report("go", cfg.MaxSourcePositions, model.FLOPs(cfg), times)
	printRSS(before, enc, 4*len(out))
	printOps(enc, windows)
	switch {
	case *bf.ort == "":
		return nil
	case *bf.compare != "":
		return benchCompare(ctx, enc, mel, bf)
	}
	return benchORT(ctx, enc, mel, bf)
}

// printOps prints the per-op times per window, and each op's GFLOP/s by
// wall time and per core (by process CPU time: flops / CPU seconds).
func printOps(enc *model.Encoder, windows int) {
	fmt.Println("per-op time per window:        wall                 process CPU      GFLOP/s: wall  per core")
	ops := enc.OpTimes()
	var wall, cpu time.Duration
	for _, d := range ops {
		wall, cpu = wall+d.Wall, cpu+d.CPU
	}
	for op := model.Op(0); int(op) < len(ops); op++ {
		d := ops[op]
		w, c := ms(d.Wall)/float64(windows), ms(d.CPU)/float64(windows)
		gf := ""
		if f := model.OpFLOPs(enc.Config(), op); f > 0 && w > 0 && c > 0 {
			gf = fmt.Sprintf("  %8.0f  %8.0f", f/w/1e6, f/c/1e6)
		}
		fmt.Printf("  %-22s %8.1f ms %5.1f%%  %8.1f ms %5.1f%%%s\n", op,
			w, 100*float64(d.Wall)/float64(wall), c, 100*float64(d.CPU)/float64(cpu), gf)
	}
}

// chosenHow says how --kernels picked the family.
func chosenHow(flag string) string {
	if flag == "" || strings.EqualFold(flag, "auto") {
		return "auto: the best this CPU runs"
	}
	return "forced by --kernels"
}

// cpuName is the CPU's model name, family and model from /proc/cpuinfo,
// for the record (a VM may report only "AMD EPYC").
func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	f := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			break // the first processor's block is enough
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			f[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("%s (family %s model %s)", f["model name"], f["cpu family"], f["model"])
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// processCPU is the user+system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(s []float64) float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	if n := len(c); n%2 == 1 {
		return c[n/2]
	} else {
		return (c[n/2-1] + c[n/2]) / 2
	}
}

func report(who string, positions int, flops float64, perWindow []float64) {
	m := median(perWindow)
	audio := float64(2*positions) * 0.01 // seconds of audio per window (10 ms hop)
	fmt.Printf("%s: %.1f ms per %.3g s window (median of %d, min %.1f), realtime factor %.0fx, %.0f GFLOP/s\n",
		who, m, audio, len(perWindow), slices.Min(perWindow), audio/(m/1e3), flops/(m/1e3)/1e9)
}

// benchInput reads --in or makes seeded log-mel-like noise, one window.
func benchInput(path string, mels, frames int) (model.Tensor, error) {
	if path != "" {
		t, err := encodercli.ReadMel(path)
		if err != nil {
			return t, err
		}
		if t.Shape[0] != 1 {
			return t, fmt.Errorf("%s: shape %v, want one window", path, t.Shape)
		}
		return t, nil
	}
	r := rand.New(rand.NewPCG(1, 1))
	t := model.Tensor{Shape: []int{1, mels, frames}, Data: make([]float32, mels*frames)}
	for i := range t.Data {
		t.Data[i] = float32(r.Float64()*3 - 1.5)
	}
	return t, nil
}

// loadAvg is the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// rssStat is the process's resident set from /proc/self/status, in MB:
// peak (VmHWM), now (VmRSS), and now split into anonymous and file-backed
// pages (the binary's text and data are file-backed).
type rssStat struct{ peak, rss, anon, file float64 }

func readRSS() rssStat {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return rssStat{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	}
	var r rssStat
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmHWM:":
			r.peak = kb / 1024
		case "VmRSS:":
			r.rss = kb / 1024
		case "RssAnon:":
			r.anon = kb / 1024
		case "RssFile:":
			r.file = kb / 1024
		}
	}
	return r
}

// printRSS reports the peak resident set and what the resident set holds.
func printRSS(before rssStat, enc *model.Encoder, outBytes int) {
	now := readRSS()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Printf("peak RSS: %.1f MB (VmHWM, whole run); RSS now %.1f MB = %.1f MB file-backed (the binary) + %.1f MB anonymous:\n",
		now.peak, now.rss, now.file, now.anon)
	fmt.Printf("  packed weights %.1f MB, workspaces %.1f MB (attention, stem, workers), output buffer %.1f MB,\n",
		float64(enc.PackedBytes())/1e6, float64(enc.WorkspaceBytes())/1e6, float64(outBytes)/1e6)
	fmt.Printf("  Go heap objects %.1f MB (the output and stem workspace among them), Go runtime mapped and not released %.1f MB;\n",
		float64(m.HeapAlloc)/1e6, float64(m.Sys-m.HeapReleased)/1e6)
	fmt.Printf("  before Load: RSS %.1f MB (%.1f MB file-backed): the binary and Go runtime\n", before.rss, before.file)
}

// benchORT alternates Go and ONNX Runtime windows on the same input and
// thread count, then compares their outputs.
func benchORT(ctx context.Context, enc *model.Encoder, mel model.Tensor, bf benchFlags) error {
	o, err := startORT(ctx, *bf.ort, *bf.ortScript, mel, enc.Threads())
	if err != nil {
		return err
	}
	defer o.close()
	fmt.Printf("ort: %s\n", o.version)
	sides := []*side{o.side(), goSide(ctx, enc, mel)}
	if err := warmUp(sides); err != nil {
		return err
	}
	if err := alternate(sides, *bf.round); err != nil {
		return err
	}
	goS, ortS := sides[1], sides[0]
	cfg := enc.Config()
	fmt.Printf("A/B, %d alternating rounds, %d thread(s), same input:\n", *bf.round, enc.Threads())
	report("  go ", cfg.MaxSourcePositions, model.FLOPs(cfg), goS.wall)
	report("  ort", cfg.MaxSourcePositions, model.FLOPs(cfg), ortS.wall)
	fmt.Printf("  speed-up go/ort: %.2fx (ratio of medians; %.2fx by process CPU time); load average now %s\n",
		median(ortS.wall)/median(goS.wall), median(ortS.cpu)/median(goS.cpu), loadAvg())
	ref, err := o.output()
	if err != nil {
		return err
	}
	got, err := enc.Encode(ctx, mel)
	if err != nil {
		return err
	}
	cos, rel := encodercli.Agreement(got.Data, ref.Data, cfg.DModel)
	fmt.Printf("  accuracy vs ort: min per-frame cosine %.7f, max|Δ|/max|ref| %.2e\n", cos, rel)
	return nil
}
