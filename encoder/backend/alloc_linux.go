//go:build linux

package backend

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// offHeap returns n zeroed bytes outside the Go heap (anonymous mmap,
// transparent huge pages requested: the kernels stream through it, and
// 2 MiB pages spare TLB misses) and a function that frees them. Long-lived
// buffers (packed weights, attention workspaces) live there so they stay out
// of the garbage collector's heap goal: the heap, and with it the headroom
// the collector allows before it runs, stays small.
func offHeap(n int) ([]byte, func(), error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, err
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // advice only
	return b, func() { _ = unix.Munmap(b) }, nil
}

// DropPages tells the kernel this process no longer needs the pages fully
// inside s, a view of a read-only file mapping (staged weights already
// packed): they leave the resident set and stay in the page cache.
func DropPages(s []uint16) {
	if len(s) == 0 {
		return
	}
	page := unix.Getpagesize()
	b := unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s))
	off := (page - int(uintptr(unsafe.Pointer(&b[0]))%uintptr(page))) % page
	if off >= len(b) {
		return
	}
	b = b[off:]
	if n := len(b) / page * page; n > 0 {
		_ = unix.Madvise(b[:n], unix.MADV_DONTNEED)
	}
}
