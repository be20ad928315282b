package backend

import "unsafe"

// view reinterprets b as n values of T (b comes from offHeap: page aligned).
func view[T uint16 | float32](b []byte, n int) []T {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}
