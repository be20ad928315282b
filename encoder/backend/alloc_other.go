//go:build !linux

package backend

// allocWeights returns heap memory for n bf16 values (the mmap path is Linux only).
func allocWeights(n int) ([]uint16, func(), error) { return make([]uint16, n), func() {}, nil }

// DropPages does nothing off Linux.
func DropPages(s []uint16) {}
