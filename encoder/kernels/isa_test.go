package kernels

import (
	"strings"
	"testing"
)

func TestParseISA(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ISA
	}{
		{"portable", Portable}, {"generic", Portable}, {"GENERIC", Portable}, {"avx2", AVX2},
		{"AVX512", AVX512}, {"avx512bf16", AVX512BF16}, {"amx", AMX},
	} {
		got, err := ParseISA(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseISA(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, i := range All() {
		if got, err := ParseISA(i.String()); err != nil || got != i {
			t.Errorf("ParseISA(%q) = %v, %v; want %v", i.String(), got, err, i)
		}
	}
	if _, err := ParseISA("sse9"); err == nil || !strings.Contains(err.Error(), `unknown ISA "sse9"`) || !strings.Contains(err.Error(), "avx512bf16") {
		t.Errorf("ParseISA(sse9) error %v, want one naming the input and the choices", err)
	}
}

// TestCheck: AMX is recognised and never runs; every ISA up to Detect runs;
// one above it fails naming the missing CPU features.
func TestCheck(t *testing.T) {
	err := AMX.Check()
	if err == nil || !strings.Contains(err.Error(), "amx is not available") || !strings.Contains(err.Error(), "no AMX kernels") {
		t.Errorf("AMX.Check() = %v, want an error saying no AMX kernels are built", err)
	}
	if AMX.Supported() || Detect() == AMX {
		t.Error("AMX reported as supported")
	}
	for _, i := range All() {
		if i == AMX {
			continue // checked above
		}
		err := i.Check()
		switch {
		case i <= Detect() && err != nil:
			t.Errorf("%s.Check() = %v; Detect() is %s", i, err, Detect())
		case i > Detect() && (err == nil || !strings.Contains(err.Error(), i.String())):
			t.Errorf("%s.Check() = %v, want an error naming %s (Detect() is %s)", i, err, i, Detect())
		}
	}
	if err := ISA(200).Check(); err == nil {
		t.Error("ISA(200).Check() = nil")
	}
}

// TestKernelCoverage makes visible which kernel families this machine's run
// of the package's tests did not exercise (the other tests loop over the
// ISAs that run here): each one it cannot run is a skipped subtest with the
// reason.
func TestKernelCoverage(t *testing.T) {
	for _, i := range All() {
		t.Run(i.String(), func(t *testing.T) {
			if err := i.Check(); err != nil {
				t.Skipf("kernels %s not tested on this machine: %v", i, err)
			}
		})
	}
}
