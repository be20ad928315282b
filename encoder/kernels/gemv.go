package kernels

import (
	"fmt"
	"unsafe"
)

// MatVecF32 computes one row c[N] = a·Bᵀ + bias (+ c when accum) for a
// BF16Pairs B: MatMulF32 with m = 1, without padding the row to the GEMM
// tile's 6 or 14 rows (the shape of a decode step and of one query's
// attention): AVX-512 runs the one-row kernel of MatMulF32's tile, AVX2 a
// matrix-vector kernel. a has B.KP values (the odd-K pad zero); bias is nil or has N
// values. At the assembly ISAs it forms the same products in the same order
// as MatMulF32's tiles, so the results are equal bit for bit; Portable runs
// MatMulF32.
func (i ISA) MatVecF32(c []float32, a []float32, b *Packed, bias []float32, accum bool, s *Scratch) error {
	if b.Format != BF16Pairs {
		return fmt.Errorf("kernels: MatVecF32 needs a BF16Pairs B, have format %d", b.Format)
	}
	if err := checkGemm(c, b.N, len(a), b.KP, 1, b, bias, b.KP); err != nil {
		return err
	}
	if i < AVX2 || b.N == 0 {
		return i.MatMulF32(c, b.N, a, b.KP, 1, b, bias, accum, s)
	}
	acc := 0
	if accum {
		acc = 1
	}
	pairs, full := b.KP/2, b.N/PanelCols
	gemv := func(c *float32, b *uint16, panels int, bias *float32) {
		if i >= AVX512 { // the one-row twin of MatMulF32's AVX-512 tile
			rowsF32BF16AVX512[1](unsafe.Pointer(&a[0]), 0, unsafe.Pointer(b), c, 0, pairs, bias, uintptr(acc), panels, uintptr(pairs*2*PanelCols*2))
			return
		}
		gemvBF16AVX2(c, &a[0], b, pairs, panels, acc, bias)
	}
	if full > 0 {
		var bp *float32
		if bias != nil {
			bp = &bias[0]
		}
		gemv(&c[0], &b.BF16[0], full, bp)
	}
	if rest := b.N - full*PanelCols; rest > 0 { // the last panel through a 32-column tile
		t := s.c[:PanelCols]
		clear(t)
		copy(t, c[full*PanelCols:b.N])
		var bp *float32
		if bias != nil {
			clear(s.bias[:])
			copy(s.bias[:], bias[full*PanelCols:b.N])
			bp = &s.bias[0]
		}
		gemv(&t[0], &b.BF16[full*pairs*2*PanelCols], 1, bp)
		copy(c[full*PanelCols:b.N], t)
	}
	return nil
}
