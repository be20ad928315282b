package kernels

import (
	"fmt"
	"strings"

	"golang.org/x/sys/cpu"
)

// ISA is an instruction-set level the kernels can run at. Higher levels
// include the lower ones.
type ISA uint8

const (
	// Portable is pure Go; it runs everywhere.
	Portable ISA = iota
	// AVX2 is AVX2 + FMA3: fp32 GEMMs with BF16 weights widened to fp32.
	AVX2
	// AVX512 is AVX-512 F/BW/VL/DQ: fp32 GEMMs with widened BF16 weights and
	// vectorised row operations.
	AVX512
	// AVX512BF16 adds AVX512_BF16: VDPBF16PS GEMMs on bf16 activations.
	AVX512BF16
)

var isaNames = [...]string{"portable", "avx2", "avx512", "avx512bf16"}

// String is the lower-case name used by options and flags.
func (i ISA) String() string {
	if int(i) < len(isaNames) {
		return isaNames[i]
	}
	return fmt.Sprintf("ISA(%d)", uint8(i))
}

// ParseISA reads an ISA name as printed by String.
func ParseISA(s string) (ISA, error) {
	for i, n := range isaNames {
		if strings.EqualFold(s, n) {
			return ISA(i), nil
		}
	}
	return Portable, fmt.Errorf("kernels: unknown ISA %q, want one of %s", s, strings.Join(isaNames[:], ", "))
}

// Detect returns the best ISA this CPU and build support (always Portable
// when built with the purego tag or on a non-amd64 architecture).
func Detect() ISA {
	if !haveAsm {
		return Portable
	}
	x := cpu.X86
	switch {
	case !x.HasAVX2 || !x.HasFMA:
		return Portable
	case !(x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ):
		return AVX2
	case !x.HasAVX512BF16:
		return AVX512
	default:
		return AVX512BF16
	}
}

// Supported reports whether i can run here: it is at most Detect().
func (i ISA) Supported() bool { return i <= Detect() }

// Check returns an error if i cannot run on this machine or build.
func (i ISA) Check() error {
	if int(i) >= len(isaNames) {
		return fmt.Errorf("kernels: unknown ISA %d", uint8(i))
	}
	if !i.Supported() {
		return fmt.Errorf("kernels: ISA %s is not supported here (best available: %s)", i, Detect())
	}
	return nil
}
