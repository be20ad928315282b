package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// npyCompare is `npy-compare [-tol T] GOT WANT`: both files hold float32 arrays of
// the same shape, every value finite, WANT not all zeros, and
// max|GOT−WANT| ≤ T·max|WANT|. It prints the figures it compared.
func npyCompare(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("npy-compare", flag.ContinueOnError)
	tol := fs.Float64("tol", 1e-3, "largest allowed max|GOT−WANT| relative to max|WANT|")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 2 || *tol < 0 {
		return usageError{fmt.Errorf("npy-compare wants -tol ≥ 0 and two files GOT WANT, got %q; %s", fs.Args(), usage)}
	}
	got, err := readNPY(fs.Arg(0))
	if err != nil {
		return err
	}
	want, err := readNPY(fs.Arg(1))
	if err != nil {
		return err
	}
	d, err := compareArrays(got, want)
	if err != nil {
		return fmt.Errorf("%s against %s: %w", fs.Arg(0), fs.Arg(1), err)
	}
	fmt.Fprintf(stdout, "shape %v: max|Δ| %.3g, max|want| %.3g, relative %.3g (tolerance %.3g)\n",
		want.Shape, d.maxDiff, d.maxRef, d.maxDiff/d.maxRef, *tol)
	if d.maxDiff > *tol*d.maxRef {
		return fmt.Errorf("%s differs from %s: max|Δ| %.3g > %.3g·max|want| (%.3g)", fs.Arg(0), fs.Arg(1), d.maxDiff, *tol, d.maxRef)
	}
	return nil
}

// arrayDiff is how two arrays differ.
type arrayDiff struct {
	maxDiff, maxRef float64
}

// compareArrays measures got against want; it fails on a shape mismatch, a
// non-finite value or an all-zero want (nothing to compare against).
func compareArrays(got, want npy.Array) (arrayDiff, error) {
	if !slices.Equal(got.Shape, want.Shape) {
		return arrayDiff{}, fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	var d arrayDiff
	for i, w := range want.Data {
		g := got.Data[i]
		if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) || math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
			return d, fmt.Errorf("element %d: got %v, want %v: not finite", i, g, w)
		}
		d.maxDiff = max(d.maxDiff, math.Abs(float64(g)-float64(w)))
		d.maxRef = max(d.maxRef, math.Abs(float64(w)))
	}
	if d.maxRef == 0 {
		return d, errors.New("want is all zeros")
	}
	return d, nil
}

// readNPY reads a float32 .npy file.
func readNPY(path string) (npy.Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return npy.Array{}, err
	}
	defer f.Close()
	a, err := npy.Read(f, 0)
	if err != nil {
		return npy.Array{}, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}
