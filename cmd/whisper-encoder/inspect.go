package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

func init() {
	register(command{
		name:    "inspect",
		summary: "print what a model can do (encode, transcribe, translate), its config, tensors and sizes: an ONNX file, a model directory or a staged dir",
		run:     runInspect,
	})
}

func runInspect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	heads := fs.Int("heads", 0, "attention heads (overrides the value inferred from an ONNX graph)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: whisper-encoder inspect [--json] [--heads N] <model.onnx | model directory (Hugging Face layout) | staged dir>")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("want one ONNX file, model directory or staged directory")}
	}
	r, err := convert.Inspect(fs.Arg(0), *heads)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(os.Stdout, r)
	return nil
}

// printReport writes the human-readable report.
func printReport(w io.Writer, r convert.Report) {
	c := r.Config
	fmt.Fprintf(w, "%s (%s)\n", r.Path, map[string]string{"onnx": "ONNX source", "model": "model repository", "staged": "staged directory"}[r.Kind])
	printCapabilities(w, r)
	if r.Key != "" {
		fmt.Fprintf(w, "key:              %s\n", r.Key)
	}
	fmt.Fprintf(w, "source precision: %s%s\n", r.SourcePrecision, map[bool]string{true: " (lossy)", false: ""}[r.SourcePrecision.Lossy()])
	switch producer := strings.TrimSpace(r.Producer); {
	case r.Opset > 0:
		fmt.Fprintf(w, "opset:            %d (%s)\n", r.Opset, producer)
	case producer != "":
		fmt.Fprintf(w, "producer:         %s\n", producer)
	}
	fmt.Fprintf(w, "config:           d_model %d, %d layers, %d heads (head dim %d), ffn %d, %d mel bins, %d positions (%d frames), layer_norm_eps %g\n",
		c.DModel, c.EncoderLayers, c.EncoderAttentionHeads, c.HeadDim(), c.EncoderFFNDim, c.NumMelBins, c.MaxSourcePositions, c.InputFrames(), c.LayerNormEps)
	fmt.Fprintf(w, "parameters:       %d — BF16 %s, FP32 %s\n", r.Sizes.Params, human(r.Sizes.BF16Bytes), human(r.Sizes.FP32Bytes))
	if d := r.Decoder; d != nil {
		fmt.Fprintf(w, "decoder:          %d layers, %d heads, ffn %d, vocabulary %d, %d text positions; %d parameters, BF16 %s\n",
			d.Layers, d.Heads, d.FFN, d.Vocab, d.MaxTargetPositions, d.Params, human(d.BF16Bytes))
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "part\tparams\tBF16\tFP32")
	for _, l := range r.Sizes.Layers {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", l.Name, l.Params, human(l.BF16Bytes), human(l.FP32Bytes))
	}
	_ = tw.Flush() // as with the Fprint calls, a failed write to stdout is not reported
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "tensor\tshape\tsource dtype\tsource\tidentified by"
	if r.Kind == "staged" {
		head += "\tmax abs err\trel RMS err"
	}
	fmt.Fprintln(tw, head)
	for _, t := range r.Tensors {
		src := t.Source
		if t.Transposed {
			src += " (transposed)"
		}
		line := fmt.Sprintf("%s\t%v\t%s\t%s\t%s", t.Name, t.Shape, t.SourceDType, src, via(t))
		if t.Error != nil {
			line += fmt.Sprintf("\t%.3g\t%.3g", t.Error.MaxAbs, t.Error.RelRMS)
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush() // as with the Fprint calls, a failed write to stdout is not reported
}

// printCapabilities writes what the model can do, its languages and tokenizer.
func printCapabilities(w io.Writer, r convert.Report) {
	c := r.Capabilities
	fmt.Fprintf(w, "can:              %s\n", strings.Join(c.Tasks(), ", "))
	if c.Transcribe {
		fmt.Fprintf(w, "languages:        %d (%s)\n", len(c.Languages), strings.Join(c.Languages, " "))
	}
	if t := r.Tokenizer; t != nil {
		src := t.Name
		if t.Kind == staged.TokenizerBuiltin {
			src = "built-in " + t.Name + " vocabulary"
		}
		fmt.Fprintf(w, "tokenizer:        %s, %d tokens, %d language tokens\n", src, t.VocabSize, t.NumLanguages)
	}
}

func via(t convert.TensorRow) string {
	if t.Node == "" {
		return t.IdentifiedBy
	}
	return t.IdentifiedBy + " " + t.Node
}

func human(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
