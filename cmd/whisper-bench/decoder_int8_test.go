package main

import (
	"strings"
	"testing"
)

// TestDecoderWeights runs the decoder bench on the committed micro model
// with each weight storage (Go side only) and checks that the header and
// the batch line name the weights that ran; an unknown name is a usage error.
func TestDecoderWeights(t *testing.T) {
	for _, w := range []string{"bf16", "int8"} {
		code, out := runQuiet(t, "decoder", "--model", "../../testdata/models/hf-micro", "--no-ort", "--batches", "1,3",
			"--rounds", "1", "--steps", "1", "--past", "2", "--threads", "2", "--weights", w)
		if code != 0 {
			t.Fatalf("--weights %s: exit %d\n%s", w, code, out)
		}
		for _, want := range []string{w + " weights, 2 threads", "batch  1: go (" + w + " weights)", "batch  3: go (" + w + " weights)"} {
			if !strings.Contains(out, want) {
				t.Errorf("--weights %s: output lacks %q:\n%s", w, want, out)
			}
		}
	}
	if code, _ := runQuiet(t, "decoder", "--model", "../../testdata/models/hf-micro", "--no-ort", "--weights", "fp8"); code != 2 {
		t.Errorf("--weights fp8: exit %d, want 2 (usage)", code)
	}
}
