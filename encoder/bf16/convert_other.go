//go:build !amd64 || purego

package bf16

import "unsafe"

// runBlocks has no vector loop on this platform (or with -tags purego): it
// converts nothing and the scalar loop does all the work.
func runBlocks(dst []uint16, src unsafe.Pointer, s *sums) int { return 0 }
