//go:build linux

package backend

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// offHeap returns n zeroed bytes outside the Go heap and a function that
// frees them: an anonymous mapping, aligned to 2 MiB when n is at least that
// and with transparent huge pages requested. Long-lived buffers (packed
// weights, attention workspaces) live there so they stay out of the garbage
// collector's heap goal: the heap, and with it the headroom the collector
// allows before it runs, stays small. Huge pages spare the kernels TLB
// misses, and page faults, which cost 5–25 µs each in a virtual machine: a
// mapping at an address that is not 2 MiB aligned gets none.
func offHeap(n int) ([]byte, func(), error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	const huge = 2 << 20
	if n < huge {
		b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, nil, err
		}
		return b, func() { _ = unix.Munmap(b) }, nil
	}
	// Map n + 2 MiB and unmap the unaligned head and the tail.
	b, err := unix.Mmap(-1, 0, n+huge, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, err
	}
	head := (huge - int(uintptr(unsafe.Pointer(&b[0]))%huge)) % huge
	if head > 0 {
		_ = unix.Munmap(b[:head])
	}
	if tail := b[head+n:]; len(tail) > 0 {
		_ = unix.Munmap(tail)
	}
	b = b[head : head+n : head+n]
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // advice only
	return b, func() { _ = unix.Munmap(b) }, nil
}

// release returns the whole pages of b to the kernel (they read as zero
// again when touched).
func release(b []byte) {
	page := unix.Getpagesize()
	if len(b) == 0 {
		return
	}
	off := (page - int(uintptr(unsafe.Pointer(&b[0]))%uintptr(page))) % page
	if off >= len(b) {
		return
	}
	b = b[off:]
	if n := len(b) / page * page; n > 0 {
		_ = unix.Madvise(b[:n], unix.MADV_DONTNEED)
	}
}

// DropPages tells the kernel this process no longer needs the pages fully
// inside s, a view of a read-only file mapping (staged weights already
// packed): they leave the resident set and stay in the page cache.
func DropPages(s []uint16) {
	if len(s) == 0 {
		return
	}
	release(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s)))
}
