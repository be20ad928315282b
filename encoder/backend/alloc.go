package backend

import (
	"sync"
	"unsafe"
)

// view reinterprets b as n values of T (b comes from offHeap: page aligned).
func view[T int8 | uint16 | float32](b []byte, n int) []T {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// arenaChunk is the address space an arena reserves at a time; only the
// pages it hands out become resident.
const arenaChunk = 64 << 20

// arena hands out the packed weights from large off-heap chunks, so that
// they sit in 2 MiB pages (see offHeap) rather than in one small mapping
// each.
type arena struct {
	mu    sync.Mutex
	chunk []byte // current chunk
	used  int    // bytes of chunk handed out
	frees []func()
}

// alloc returns n zeroed bytes, 64-byte aligned.
func (a *arena) alloc(n int) ([]byte, error) {
	n = (n + 63) &^ 63
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used+n > len(a.chunk) {
		mem, free, err := offHeap(max(arenaChunk, n))
		if err != nil {
			return nil, err
		}
		a.trim()
		a.chunk, a.used = mem, 0
		a.frees = append(a.frees, free)
	}
	b := a.chunk[a.used : a.used+n : a.used+n]
	a.used += n
	return b, nil
}

// trim returns the pages of the current chunk past what was handed out
// (the rest of a partly used huge page) to the kernel.
func (a *arena) trim() {
	if a.chunk != nil {
		release(a.chunk[a.used:])
	}
}

// Trim is trim under the lock.
func (a *arena) Trim() {
	a.mu.Lock()
	a.trim()
	a.mu.Unlock()
}

// free unmaps every chunk.
func (a *arena) free() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.frees {
		f()
	}
	a.frees, a.chunk, a.used = nil, nil, 0
}
