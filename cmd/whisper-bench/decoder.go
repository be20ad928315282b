package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
)

type benchDecoderFlags struct {
	model, kernels, act, weights, batches *string
	ortScript                             *string
	threads, past, rounds, beams, steps   *int
	noORT                                 *bool
	settle                                *time.Duration
}

func runBenchDecoder(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("decoder", flag.ContinueOnError)
	f := benchDecoderFlags{
		model:     fs.String("model", "", "Hugging Face model directory (config.json, model.safetensors; onnx/decoder_with_past_model.onnx for the ORT side)"),
		kernels:   fs.String("kernels", "auto", "kernel family: auto (the best this CPU runs), avx512bf16, avx512, avx2 or portable (generic); amx is recognised but has no kernels yet"),
		act:       fs.String("activations", "auto", "GEMM activation precision: auto, bf16, fp32"),
		weights:   fs.String("weights", "bf16", "storage of the step-time decoder matrices: bf16 or int8 (weight-only, a power-of-two scale per output row)"),
		batches:   fs.String("batches", "1,8,32", "comma-separated batch sizes (sequences advanced per step)"),
		ortScript: fs.String("ort-script", "testdata/ort/decoder_bench.js", "the onnxruntime-node side"),
		threads:   fs.Int("threads", 0, "worker threads for both sides (default GOMAXPROCS)"),
		past:      fs.Int("past", 64, "tokens already in every sequence's cache (the step is at position past)"),
		rounds:    fs.Int("rounds", 9, "alternating Go/ORT rounds per batch size"),
		steps:     fs.Int("steps", 20, "consecutive steps per side and round (a server steps back to back: the median is a step in that steady state)"),
		beams:     fs.Int("beams", 1, "sequences per window (beams of a beam search share one window's cross-attention keys/values)"),
		noORT:     fs.Bool("no-ort", false, "measure the Go decoder only"),
		settle:    fs.Duration("settle", 50*time.Millisecond, "pause before each side's steps, so the other side's idle threads (ORT's spin before they block, our helpers' spin window) are asleep and neither side's steps share the cores with them"),
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *f.model == "" || fs.NArg() > 0 || *f.rounds < 1 || *f.steps < 1 || *f.past < 0 || *f.beams < 1 {
		return usageError{errors.New("want --model, no arguments, --rounds ≥ 1, --steps ≥ 1, --beams ≥ 1 and --past ≥ 0 (see -h)")}
	}
	if *f.weights != decoder.WeightsBF16 && *f.weights != decoder.WeightsInt8 {
		return usageError{fmt.Errorf("--weights %q: want %s or %s", *f.weights, decoder.WeightsBF16, decoder.WeightsInt8)}
	}
	var batches []int
	for _, s := range strings.Split(*f.batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || b < 1 {
			return usageError{fmt.Errorf("--batches: %q is not a batch size ≥ 1", s)}
		}
		batches = append(batches, b)
	}
	if *f.threads > 0 {
		runtime.GOMAXPROCS(*f.threads)
	}
	t0 := time.Now()
	d, err := decoder.LoadHF(*f.model, decoder.Options{Threads: *f.threads, Kernels: *f.kernels, Activations: *f.act, Weights: *f.weights})
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := d.Config()
	if *f.past+1 > cfg.MaxTargetPositions {
		return usageError{fmt.Errorf("--past %d leaves no room in the text context of %d", *f.past, cfg.MaxTargetPositions)}
	}
	fmt.Printf("machine: %s, %d CPUs, load average %s (the A/B alternates rounds)\n", cpuModel(), runtime.NumCPU(), loadAvg())
	fmt.Printf("decoder: d_model %d, %d layers, %d heads, ffn %d, vocab %d; %s, %s weights, %d threads, packed %.1f MB, loaded in %.0f ms\n",
		cfg.DModel, cfg.Layers, cfg.Heads, cfg.FFN, cfg.Vocab, d.Backend(), d.Weights(), d.Threads(), float64(d.PackedBytes())/1e6, ms(time.Since(t0)))
	fmt.Printf("step: one token per sequence at position %d, cross-attention over %d encoder positions, %d sequence(s) per window; medians of %d rounds × %d consecutive steps a side\n",
		*f.past, cfg.MaxSourcePositions, *f.beams, *f.rounds, *f.steps)
	for _, b := range batches {
		if err := benchDecodeBatch(ctx, d, b, f); err != nil {
			return fmt.Errorf("batch %d: %w", b, err)
		}
	}
	return nil
}

// benchDecodeBatch sets up b sequences at position past, each over its own
// random window, and times decode steps, alternating with ONNX Runtime.
func benchDecodeBatch(ctx context.Context, d *decoder.Decoder, b int, f benchDecoderFlags) error {
	cfg := d.Config()
	r := rand.New(rand.NewPCG(uint64(b), 448))
	hidden := make([]float32, cfg.MaxSourcePositions*cfg.DModel)
	seqs := make([]*decoder.Sequence, b)
	prefill := make([]decoder.Input, b)
	t0 := time.Now()
	var x *decoder.Cross
	windows := 0
	for i := range seqs {
		if i%*f.beams == 0 {
			for j := range hidden {
				hidden[j] = float32(r.NormFloat64())
			}
			var err error
			if x, err = d.NewCross(ctx, hidden, cfg.MaxSourcePositions); err != nil {
				return err
			}
			windows++
		}
		var err error
		if seqs[i], err = d.NewSequence(x); err != nil {
			return err
		}
		prefill[i] = decoder.Input{Seq: seqs[i], Tokens: make([]int, *f.past+1)}
		for j := range prefill[i].Tokens {
			prefill[i].Tokens[j] = r.IntN(min(cfg.Vocab, 50257))
		}
	}
	crossMS := ms(time.Since(t0)) / float64(windows)
	batch := d.NewBatch()
	t0 = time.Now()
	if _, err := batch.Step(ctx, prefill); err != nil { // the prompt and past of every sequence at once
		return err
	}
	prefillMS := ms(time.Since(t0))
	step := make([]decoder.Input, b)
	for i := range step {
		step[i] = decoder.Input{Seq: seqs[i], Tokens: []int{r.IntN(min(cfg.Vocab, 50257))}}
	}
	goRun := func() (float64, error) {
		for _, s := range seqs {
			if err := s.Truncate(*f.past); err != nil {
				return 0, err
			}
		}
		t := time.Now()
		_, err := batch.Step(ctx, step)
		return ms(time.Since(t)), err
	}
	if _, err := goRun(); err != nil { // warm-up
		return err
	}
	var ortRun func() (float64, error)
	if !*f.noORT {
		ort, stop, err := startDecoderORT(ctx, f, b, d.Threads())
		if err != nil {
			return err
		}
		defer stop()
		ortRun = ort
	}
	// Each round runs --steps consecutive steps on one side, then on the
	// other (which side goes first alternates); every step is one sample.
	var goT, ortT []float64
	runs := func(run func() (float64, error), into *[]float64) error {
		time.Sleep(*f.settle)
		for range *f.steps {
			v, err := run()
			if err != nil {
				return err
			}
			*into = append(*into, v)
		}
		return nil
	}
	for round := range *f.rounds {
		if ortRun != nil && round%2 == 1 {
			if err := runs(ortRun, &ortT); err != nil {
				return err
			}
		}
		if err := runs(goRun, &goT); err != nil {
			return err
		}
		if ortRun != nil && round%2 == 0 {
			if err := runs(ortRun, &ortT); err != nil {
				return err
			}
		}
	}
	mem := float64(windows*cfg.CrossBytes(cfg.MaxSourcePositions))/float64(b) + float64(seqs[0].Bytes())
	fmt.Printf("batch %2d: go (%s weights) %7.2f ms/step %8.1f tokens/s", b, d.Weights(), median(goT), float64(b)*1000/median(goT))
	if len(ortT) > 0 {
		fmt.Printf(" | ort %7.2f ms/step %8.1f tokens/s | go/ort %.2fx", median(ortT), float64(b)*1000/median(ortT), median(ortT)/median(goT))
	}
	fmt.Printf(" | go: cross K/V %.0f ms/window, prefill of %d×%d tokens %.0f ms, %.1f MB per sequence (window share + cache); load %s\n",
		crossMS, b, *f.past+1, prefillMS, mem/1e6, loadAvg())
	return nil
}

// startDecoderORT starts the onnxruntime-node side for batch b and returns
// a function timing one of its steps.
func startDecoderORT(ctx context.Context, f benchDecoderFlags, b, threads int) (func() (float64, error), func(), error) {
	cmd := exec.CommandContext(ctx, "node", *f.ortScript, "--onnx", *f.model+"/onnx", "--batch", strconv.Itoa(b),
		"--past", strconv.Itoa(*f.past), "--threads", strconv.Itoa(threads))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start onnxruntime-node (%s): %w", *f.ortScript, err)
	}
	lines := bufio.NewScanner(stdout)
	stop := func() { // best effort: the figures are taken, or the run already failed
		_, _ = io.WriteString(stdin, "quit\n")
		_ = stdin.Close()
		_ = cmd.Wait()
	}
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ready ") {
		stop()
		return nil, nil, fmt.Errorf("onnxruntime-node did not start (%q, %v)", lines.Text(), lines.Err())
	}
	run := func() (float64, error) {
		if _, err := io.WriteString(stdin, "run\n"); err != nil {
			return 0, fmt.Errorf("onnxruntime-node: %w", err)
		}
		if !lines.Scan() {
			return 0, fmt.Errorf("onnxruntime-node exited (%v)", lines.Err())
		}
		v, err := strconv.ParseFloat(strings.TrimPrefix(lines.Text(), "ms "), 64)
		if err != nil {
			return 0, fmt.Errorf("onnxruntime-node said %q", lines.Text())
		}
		return v, nil
	}
	if _, err := run(); err != nil { // warm-up
		stop()
		return nil, nil, err
	}
	return run, stop, nil
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
