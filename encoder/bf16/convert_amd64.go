//go:build amd64 && !purego

package bf16

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAVX512 selects the AVX-512 conversion loop (tests switch it off to compare).
var useAVX512 = cpu.X86.HasAVX512F

// convertLE16 converts whole blocks of 16 little-endian float32 values at src
// into bfloat16 at dst (n values at most), adding their errors to s, and stops
// before the first block holding a NaN, ±Inf or a value that rounds to ±Inf.
// It returns how many values it converted (a multiple of 16).
//
//go:noescape
func convertLE16(dst *uint16, src *byte, n int, s *sums) int

// runBlocks converts what it can of src into dst with the vector loop and
// returns how many values that was; the caller converts the rest.
func runBlocks(dst []uint16, src unsafe.Pointer, s *sums) int {
	if !useAVX512 || len(dst) < 16 {
		return 0
	}
	return convertLE16(unsafe.SliceData(dst), (*byte)(src), len(dst), s)
}
