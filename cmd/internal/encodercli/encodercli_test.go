package encodercli

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

func TestReadMelShapes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		shape, want []int
		err         string
	}{
		{[]int{4, 6}, []int{1, 4, 6}, ""},
		{[]int{2, 4, 6}, []int{2, 4, 6}, ""},
		{[]int{24}, nil, "want [n_mels, frames] or [batch, n_mels, frames]"},
	} {
		n := 1
		for _, d := range tc.shape {
			n *= d
		}
		a := npy.Array{Shape: tc.shape, Data: make([]float32, n)}
		for i := range a.Data {
			a.Data[i] = float32(i) / 4
		}
		path := filepath.Join(dir, "mel.npy")
		if err := WriteNPY(path, a); err != nil {
			t.Fatal(err)
		}
		got, err := ReadMel(path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
				t.Errorf("shape %v: error %v, want one naming %s and %q", tc.shape, err, path, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("shape %v: %v", tc.shape, err)
		}
		if !slices.Equal(got.Shape, tc.want) || !slices.Equal(got.Data, a.Data) {
			t.Errorf("shape %v: read %v (%d values), want %v with the written values", tc.shape, got.Shape, len(got.Data), tc.want)
		}
	}
	if _, err := ReadMel(filepath.Join(dir, "missing.npy")); err == nil {
		t.Error("a missing file read without error")
	}
}

func TestAgreement(t *testing.T) {
	ref := []float32{1, 0, 0, 2, 3, 4}
	if cos, rel := Agreement(ref, ref, 2); cos < 1-1e-12 || rel != 0 {
		t.Errorf("identical outputs: cosine %v, rel %v; want 1, 0", cos, rel)
	}
	// Second frame of got, (2, 0), orthogonal to ref's (0, 2): min cosine 0;
	// largest |Δ| 2 against max|ref| 4.
	got := []float32{1, 0, 2, 0, 3, 4}
	cos, rel := Agreement(got, ref, 2)
	if math.Abs(cos) > 1e-12 || math.Abs(rel-0.5) > 1e-12 {
		t.Errorf("cosine %v, rel %v; want 0, 0.5", cos, rel)
	}
}
