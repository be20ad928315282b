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
	// AMX names Intel's AMX BF16 tiles. It is recognised so that asking for
	// it gets a clear answer, but no AMX kernels are built: it never runs.
	AMX
)

var isaNames = [...]string{"portable", "avx2", "avx512", "avx512bf16", "amx"}

// aliases are other names ParseISA accepts.
var aliases = map[string]ISA{"generic": Portable}

// String is the lower-case name used by options and flags.
func (i ISA) String() string {
	if int(i) < len(isaNames) {
		return isaNames[i]
	}
	return fmt.Sprintf("ISA(%d)", uint8(i))
}

// ParseISA reads an ISA name as printed by String ("generic" is another
// name for portable). A known name may still not run here: see Check.
func ParseISA(s string) (ISA, error) {
	for i, n := range isaNames {
		if strings.EqualFold(s, n) {
			return ISA(i), nil
		}
	}
	if i, ok := aliases[strings.ToLower(s)]; ok {
		return i, nil
	}
	return Portable, fmt.Errorf("kernels: unknown ISA %q, want one of %s (or generic)", s, strings.Join(isaNames[:], ", "))
}

// All lists every ISA, the unrunnable AMX included, lowest first.
func All() []ISA {
	out := make([]ISA, len(isaNames))
	for i := range out {
		out[i] = ISA(i)
	}
	return out
}

// Detect returns the best ISA this CPU and build support (always Portable
// when built with the purego tag or on a non-amd64 architecture; never AMX,
// which has no kernels).
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

// Check returns an error if i cannot run on this machine or build, naming
// what is missing.
func (i ISA) Check() error {
	switch {
	case int(i) >= len(isaNames):
		return fmt.Errorf("kernels: unknown ISA %d", uint8(i))
	case i == AMX:
		return fmt.Errorf("kernels: amx is not available: no AMX kernels are built yet (this CPU %s AMX-BF16; best available here: %s)",
			map[bool]string{true: "has", false: "lacks"}[cpu.X86.HasAMXBF16], Detect())
	case i.Supported():
		return nil
	case !haveAsm:
		return fmt.Errorf("kernels: ISA %s is not supported here: this build lacks the amd64 assembly (purego tag or another architecture; best available: %s)", i, Detect())
	}
	return fmt.Errorf("kernels: ISA %s is not supported here: this CPU lacks %s (best available: %s)", i, i.needs(), Detect())
}

// needs names the CPU features i requires that this CPU does not have.
func (i ISA) needs() string {
	x := cpu.X86
	var miss []string
	for _, f := range []struct {
		from ISA
		name string
		have bool
	}{
		{AVX2, "AVX2", x.HasAVX2}, {AVX2, "FMA", x.HasFMA},
		{AVX512, "AVX512F", x.HasAVX512F}, {AVX512, "AVX512BW", x.HasAVX512BW},
		{AVX512, "AVX512VL", x.HasAVX512VL}, {AVX512, "AVX512DQ", x.HasAVX512DQ},
		{AVX512BF16, "AVX512_BF16", x.HasAVX512BF16},
	} {
		if i >= f.from && !f.have {
			miss = append(miss, f.name)
		}
	}
	return strings.Join(miss, ", ")
}
