package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// runQuiet runs whisper-bench with args and returns its exit code and stdout.
func runQuiet(t *testing.T, args ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	out, _ := os.Create(filepath.Join(dir, "stdout"))
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	code := run(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	out.Close()
	errf.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "stdout"))
	return code, string(b)
}

func stageTiny(t *testing.T) string {
	t.Helper()
	res, err := convert.Stage(context.Background(), convert.Options{Source: "../../testdata/models/tiny-op17.onnx", CacheDir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return res.Dir
}

func TestEncoderCommand(t *testing.T) {
	dir := stageTiny(t)
	code, out := runQuiet(t, "encoder", "--weights", dir, "--iterations", "2", "--batch", "2", "--threads", "2")
	if code != 0 {
		t.Fatalf("encoder: exit %d", code)
	}
	for _, want := range []string{"ms per 0.48 s window", "realtime factor", "GFLOP/s", "peak RSS", "attention", "mlp"} {
		if !strings.Contains(out, want) {
			t.Errorf("encoder output lacks %q:\n%s", want, out)
		}
	}
}

// TestEncoderCompare times every kernel family this CPU runs (and the
// portable one) against ONNX Runtime on the tiny fixture and checks the table
// has a row for each, agreeing with ORT.
func TestEncoderCompare(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed (ONNX Runtime runs in onnxruntime-node)")
	}
	if _, err := os.Stat("../../testdata/ort/node_modules/onnxruntime-node"); err != nil {
		t.Skip("onnxruntime-node not installed: (cd testdata/ort && npm ci)")
	}
	dir := stageTiny(t)
	code, out := runQuiet(t, "encoder", "--weights", dir, "--iterations", "1", "--rounds", "2", "--threads", "1",
		"--ort", "../../testdata/models/tiny-op17.onnx", "--ort-script", "../../testdata/ort/bench.js", "--compare", "all,portable")
	if code != 0 {
		t.Fatalf("encoder --compare: exit %d\n%s", code, out)
	}
	want := []string{"| onnxruntime-node ", "| go cpu/portable/fp32 |", "kernels: " + kernels.Detect().String() + " (auto"}
	for i := kernels.Detect(); i > kernels.Portable; i-- {
		want = append(want, "| go cpu/"+i.String()+"/")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "|"); strings.HasPrefix(line, "| go ") && len(f) == 8 {
			rows++
			if cos, err := strconv.ParseFloat(strings.TrimSpace(f[6]), 64); err != nil || cos < 0.9999 {
				t.Errorf("row %q: cosine vs ORT %q, want ≥ 0.9999", line, f[6])
			}
		}
	}
	if rows != len(want)-2 {
		t.Errorf("%d table rows of 7 columns for go, want %d:\n%s", rows, len(want)-2, out)
	}
}

func TestUsageFailures(t *testing.T) {
	dir := stageTiny(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no subcommand", nil, 2},
		{"unknown subcommand", []string{"bench"}, 2},
		{"encoder no weights", []string{"encoder"}, 2},
		{"encoder zero batch", []string{"encoder", "--weights", dir, "--batch", "0"}, 2},
		{"encoder compare without ort", []string{"encoder", "--weights", dir, "--compare", "all"}, 2},
		{"encoder amx", []string{"encoder", "--weights", dir, "--kernels", "amx"}, 1},
		{"encoder not staged", []string{"encoder", "--weights", t.TempDir()}, 1},
		{"stage zero runs", []string{"stage", "--runs", "0"}, 2},
		{"stage argument", []string{"stage", "extra"}, 2},
		{"stage no encoder binary", []string{"stage", "--encoder", filepath.Join(t.TempDir(), "whisper-encoder"), "--work", t.TempDir()}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := runQuiet(t, tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
		})
	}
}

// TestStageCommand measures a real whisper-encoder (built for the test) staging
// the tiny fixture once, without the seed pipeline.
func TestStageCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds whisper-encoder")
	}
	bin := filepath.Join(t.TempDir(), "whisper-encoder")
	if out, err := exec.Command("go", "build", "-o", bin, "../whisper-encoder").CombinedOutput(); err != nil {
		t.Fatalf("go build whisper-encoder: %v\n%s", err, out)
	}
	code, out := runQuiet(t, "stage", "--encoder", bin, "--model", "../../testdata/models/tiny-op17.onnx",
		"--runs", "1", "--python", "", "--work", t.TempDir())
	if code != 0 {
		t.Fatalf("stage: exit %d\n%s", code, out)
	}
	for _, want := range []string{"staging ../../testdata/models/tiny-op17.onnx", "whisper-encoder stage", "wall median", "peak RSS median"} {
		if !strings.Contains(out, want) {
			t.Errorf("stage output lacks %q:\n%s", want, out)
		}
	}
}
