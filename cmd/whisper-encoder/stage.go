package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	contract "github.com/xdna-whisper/xdna-whisper/api/report"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/download"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

func init() {
	register(command{
		name:    "stage",
		summary: "stage an ONNX Whisper encoder (file, http(s) or hf://) as BF16 in the cache",
		run:     runStage,
	})
}

func runStage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stage", flag.ContinueOnError)
	source := fs.String("source", "", "an encoder ONNX file (a path, an http(s) URL or hf://ORG/REPO/PATH[@REV]) or a whole model in Hugging Face's layout (a directory or hf://ORG/REPO[@REV]) (required)")
	sum := fs.String("sha256", "", "expected sha256 of the source ONNX file (hex; single-file sources only)")
	cache := fs.String("cache", os.Getenv("XDNA_STAGED_CACHE"), "cache directory for staged models (required; default $XDNA_STAGED_CACHE)")
	heads := fs.Int("heads", 0, "attention heads (overrides the value inferred from the graph)")
	resultFile := fs.String("result-file", "", "write a JSON summary here (the operator's Job uses /dev/termination-log)")
	stall := fs.Duration("stall-timeout", 60*time.Second, "give up a download attempt after this long without data")
	reportPod := fs.String("report-pod", "", "also publish progress as an annotation of this pod (the operator's staging Job passes its own pod)")
	maxBytes := fs.Int64("max-download-bytes", download.DefaultMaxBytes, "refuse a downloaded file larger than this (bytes)")
	allow := fs.String("allow-hosts", "", "comma-separated hosts, domain suffixes (.example.com), IPs and CIDRs a source may reach: when set, only these (they also override --deny-hosts and the built-in denials)")
	deny := fs.String("deny-hosts", "", "comma-separated hosts, domain suffixes, IPs and CIDRs a source may not reach, besides link-local and cloud metadata addresses (always denied unless allowed)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *source == "" || *cache == "" || fs.NArg() > 0 {
		return usageError{errors.New("want --source and --cache, and no arguments (see -h)")}
	}
	if *heads < 0 {
		return usageError{fmt.Errorf("--heads %d: want > 0", *heads)}
	}
	if *maxBytes <= 0 {
		return usageError{fmt.Errorf("--max-download-bytes %d: want > 0", *maxBytes)}
	}
	policy := &download.Policy{Allow: splitList(*allow), Deny: splitList(*deny)}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	progress, finish := progressReporter(logger)
	progress, finishReport := withPodReport(logger, *reportPod, progress)
	defer finishReport()
	r, err := convert.Stage(ctx, convert.Options{
		Source: *source, SHA256: *sum, CacheDir: *cache, Heads: *heads,
		ConverterVersion: converterVersion(), Logger: logger, Progress: progress,
		Download: download.Options{Token: os.Getenv("HF_TOKEN"), StallTimeout: *stall, MaxBytes: *maxBytes, Policy: policy},
	})
	finish()
	if *resultFile != "" {
		var s contract.StageResult
		if err != nil {
			s = contract.FailedStage(err)
		} else {
			s = contract.StageResult{Key: r.Key, Dir: r.Dir, SourceSHA256: r.SourceSHA256, SourcePrecision: string(r.SourcePrecision),
				SizeBytes: r.SizeBytes, StagedAt: r.StagedAt, Existing: r.Existing, Capabilities: resultCaps(r.Capabilities)}
		}
		if werr := writeResult(*resultFile, s); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if r.Lossy {
		fmt.Fprintf(os.Stderr, "warning: the source is %s, a lossy precision: the best BF16 weights come from an fp32 export\n", r.SourcePrecision)
	}
	if r.Existing {
		logger.Info("already staged", "dir", r.Dir, "key", r.Key)
	}
	fmt.Println(r.Dir)
	return nil
}

// resultCaps is the staged entry's capabilities in the operator contract's form.
func resultCaps(c staged.Capabilities) *contract.Capabilities {
	return &contract.Capabilities{Encode: c.Encode, Transcribe: c.Transcribe, Translate: c.Translate, Languages: c.Languages}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func converterVersion() string {
	return version.String("whisper-encoder")
}

// writeResult writes the result file (api/report's contract, at most contract.MaxMessageBytes).
func writeResult(path string, s contract.StageResult) error {
	b := s.Marshal()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("result file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("result file: %w", err)
	}
	return nil
}

// progressReporter draws a progress bar per phase on a terminal and logs
// periodic structured lines otherwise.
func progressReporter(logger *slog.Logger) (func(convert.Progress), func()) {
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	reporters := map[string]*download.Reporter{}
	var current *download.Reporter
	update := func(p convert.Progress) {
		r, ok := reporters[p.Phase]
		switch {
		case !ok:
			if current != nil {
				current.Finish()
			}
			r = &download.Reporter{Label: p.Phase, TTY: tty, W: io.Writer(os.Stderr), Logger: logger}
			reporters[p.Phase] = r
			current = r
		case r != current:
			return // hashing goes on beside the conversion: show the newest phase only
		}
		r.Update(p.Done, p.Total)
	}
	return syncProgress(update), func() {
		if current != nil {
			current.Finish()
		}
	}
}
