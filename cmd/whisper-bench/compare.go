package main

// --compare: several kernel families and ONNX Runtime take turns on the same
// input in one run, and a table compares them.

import (
	"context"
	"fmt"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/cmd/internal/encodercli"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
)

// compareList reads --compare: a comma-separated list of KERNELS or
// KERNELS/ACTIVATIONS entries, where "all" stands for every assembly kernel
// family this CPU runs, best first, each with its default activations.
func compareList(s string) ([]model.Options, error) {
	var out []model.Options
	for _, e := range strings.Split(s, ",") {
		k, act, _ := strings.Cut(strings.TrimSpace(e), "/")
		switch {
		case k == "":
			return nil, fmt.Errorf("--compare %q: empty entry, want KERNELS[/ACTIVATIONS],…", s)
		case strings.EqualFold(k, "all"):
			for i := kernels.Detect(); i > kernels.Portable; i-- {
				out = append(out, model.Options{Kernels: i.String()})
			}
		default:
			out = append(out, model.Options{Kernels: k, Activations: act})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--compare %s: this CPU or build runs only the portable kernels; name them to time them", s)
	}
	return out, nil
}

// benchCompare loads the encoder once per --compare entry (at enc's thread
// count), runs them and ONNX Runtime in alternating rounds and prints a
// table: median ms per window, GFLOP/s, speed-up over ORT by wall and by
// CPU time, and agreement with ORT's output.
func benchCompare(ctx context.Context, enc *model.Encoder, mel model.Tensor, bf benchFlags) error {
	list, err := compareList(*bf.compare)
	if err != nil {
		return usageError{err}
	}
	var encs []*model.Encoder
	defer func() {
		for _, e := range encs {
			_ = e.Close() // always nil: model.Encoder.Close frees memory
		}
	}()
	for _, o := range list {
		o.Threads = enc.Threads()
		e, err := model.Load(*bf.mf.Weights, o)
		if err != nil {
			return fmt.Errorf("--compare %s: %w", o.Kernels, err)
		}
		encs = append(encs, e)
	}
	o, err := startORT(ctx, *bf.ort, *bf.ortScript, mel, enc.Threads())
	if err != nil {
		return err
	}
	defer o.close()
	sides := []*side{o.side()}
	for _, e := range encs {
		sides = append(sides, goSide(ctx, e, mel))
	}
	if err := warmUp(sides); err != nil {
		return err
	}
	if err := alternate(sides, *bf.round); err != nil {
		return err
	}
	ref, err := o.output()
	if err != nil {
		return err
	}
	cfg := enc.Config()
	flops := model.FLOPs(cfg)
	fmt.Printf("\n%d alternating rounds, %d thread(s), same input; CPU: %s; load average now %s\n", *bf.round, enc.Threads(), cpuName(), loadAvg())
	fmt.Println("| engine | ms/window (median, min) | GFLOP/s | × ORT (wall) | × ORT (CPU time) | min cosine vs ORT |")
	fmt.Println("|---|---|---|---|---|---|")
	ort := sides[0]
	fmt.Printf("| %s (fp32) | %.4g, %.4g | %.0f | 1 | 1 | — |\n", ort.name, median(ort.wall), minOf(ort.wall), flops/median(ort.wall)/1e6)
	for i, e := range encs {
		s := sides[i+1]
		got, err := e.Encode(ctx, mel)
		if err != nil {
			return err
		}
		cos, _ := encodercli.Agreement(got.Data, ref.Data, cfg.DModel)
		fmt.Printf("| go %s | %.4g, %.4g | %.0f | **%.2f** | %.2f | %.7f |\n", s.name, median(s.wall), minOf(s.wall),
			flops/median(s.wall)/1e6, median(ort.wall)/median(s.wall), median(ort.cpu)/median(s.cpu), cos)
	}
	return nil
}

func minOf(s []float64) float64 {
	m := s[0]
	for _, v := range s[1:] {
		m = min(m, v)
	}
	return m
}
