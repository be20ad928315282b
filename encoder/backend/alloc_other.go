//go:build !linux

package backend

// offHeap returns heap memory (the mmap path is Linux only).
func offHeap(n int) ([]byte, func(), error) { return make([]byte, n), func() {}, nil }

// release does nothing off Linux.
func release(b []byte) {}

// DropPages does nothing off Linux.
func DropPages(s []uint16) {}
