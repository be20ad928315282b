package decoder

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// fixtureCache is where make hf-fixture-SIZE writes the real-vocabulary
// fixtures ($XDNA_CACHE/fixtures, as the Makefile defaults it).
func fixtureCache() string {
	if c := os.Getenv("XDNA_CACHE"); c != "" {
		return filepath.Join(c, "fixtures")
	}
	return "/var/cache/xdna-whisper/fixtures"
}

// TestLiveORT runs ONNX Runtime now (testdata/ort/decoder_golden.js, on
// onnxruntime-node) on the decoder exports of every fixture present and
// compares the decoder with it, step by step: the committed hf-micro (its
// onnx/ exports are committed; make fixtures-decoder regenerates them), and the real-vocabulary
// tiny and base shapes (make hf-fixture-tiny, make hf-fixture-base).
func TestLiveORT(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: no live ONNX Runtime")
	}
	if _, err := os.Stat(filepath.Join(repo, "testdata/ort/node_modules/onnxruntime-node")); err != nil {
		t.Skip("testdata/ort/node_modules has no onnxruntime-node (cd testdata/ort && npm ci)")
	}
	fixtures := []struct{ name, dir, check string }{
		{"micro", microDir, microCheck},
		{"tiny", filepath.Join(fixtureCache(), "hf-tiny"), filepath.Join(fixtureCache(), "hf-tiny", "check")},
		{"base", filepath.Join(fixtureCache(), "hf-base"), filepath.Join(fixtureCache(), "hf-base", "check")},
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(f.dir, "onnx", "decoder_with_past_model.onnx")); err != nil {
				t.Skipf("no decoder export in %s (make fixtures-decoder / make hf-fixture-%s)", f.dir, f.name)
			}
			out := t.TempDir()
			cmd := exec.Command(node, filepath.Join(repo, "testdata/ort/decoder_golden.js"), "--onnx", filepath.Join(f.dir, "onnx"), "--check", f.check, "--out", out, "--threads", "2")
			msg, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("decoder_golden.js: %v\n%s", err, msg)
			}
			t.Logf("%s", msg)
			c := readCheck(t, f.check)
			d := load(t, f.dir, Options{})
			got := decodeStaggered(t, d, c)
			for i := range got {
				want := readNPY(t, filepath.Join(out, fmt.Sprintf("ort_%d.npy", i)))
				cos, flips := compare(t, fmt.Sprintf("sequence %d", i), got[i], want.Data, d.Config().Vocab, 0.05)
				t.Logf("%s (%s) sequence %d vs ONNX Runtime now: %d rows, min cosine %.7f, argmax differs in %d", f.name, d.Backend(), i, len(want.Data)/d.Config().Vocab, cos, flips)
			}
		})
	}
}
