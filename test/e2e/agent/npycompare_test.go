package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

func writeNPYFile(t *testing.T, a npy.Array) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.npy")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.Write(f, a); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNPYCompare(t *testing.T) {
	want := npy.Array{Shape: []int{1, 2, 2}, Data: []float32{1, -2, 3, -4}}
	nan := float32(math.NaN())
	tests := []struct {
		name    string
		got     npy.Array
		want    npy.Array
		args    []string
		wantErr string // "" for agreement
	}{
		{"identical", want, want, nil, ""},
		{"within tolerance", npy.Array{Shape: []int{1, 2, 2}, Data: []float32{1, -2, 3, -4.003}}, want, nil, ""},
		{"beyond tolerance", npy.Array{Shape: []int{1, 2, 2}, Data: []float32{1, -2, 3, -4.01}}, want, nil, "max|Δ| 0.01 > 0.001·max|want| (4)"},
		{"looser tolerance", npy.Array{Shape: []int{1, 2, 2}, Data: []float32{1, -2, 3, -4.01}}, want, []string{"-tol", "0.01"}, ""},
		{"shape", npy.Array{Shape: []int{2, 2}, Data: want.Data}, want, nil, "shape [2 2], want [1 2 2]"},
		{"not finite", npy.Array{Shape: []int{1, 2, 2}, Data: []float32{1, nan, 3, -4}}, want, nil, "element 1: got NaN"},
		{"all zeros", npy.Array{Shape: []int{2}, Data: []float32{0, 0}}, npy.Array{Shape: []int{2}, Data: []float32{0, 0}}, nil, "want is all zeros"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append(append([]string{}, tt.args...), writeNPYFile(t, tt.got), writeNPYFile(t, tt.want))
			err := npyCompare(&out, args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("npy-compare: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("npy-compare: error %v, want one containing %q", err, tt.wantErr)
			case tt.wantErr == "" && !strings.HasPrefix(out.String(), "shape "):
				t.Errorf("npy-compare printed %q, want the figures", out.String())
			}
		})
	}
}

func TestNPYCompareUsage(t *testing.T) {
	p := writeNPYFile(t, npy.Array{Shape: []int{1}, Data: []float32{1}})
	for _, args := range [][]string{nil, {p}, {p, p, p}, {"-tol", "-1", p, p}, {"-bogus", p, p}} {
		if _, ok := npyCompare(&bytes.Buffer{}, args).(usageError); !ok {
			t.Errorf("npy-compare %q: want a usage error", args)
		}
	}
	if err := npyCompare(&bytes.Buffer{}, []string{p, filepath.Join(t.TempDir(), "missing.npy")}); err == nil || !strings.Contains(err.Error(), "missing.npy") {
		t.Errorf("npy-compare with a missing file: %v, want an error naming it", err)
	}
}
