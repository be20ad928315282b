package kernels

import (
	"cmp"
	"fmt"
	"unsafe"
)

// tileFn computes one register tile; see gemm_amd64.go for the contract.
// a and b point at the first A row and the B panel position of the k block.
type tileFn func(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr)

// micro describes a micro-kernel and how the driver feeds it.
type micro struct {
	tile  tileFn
	mr    int // rows per tile
	nr    int // columns per tile: 32 (a whole panel) or 16 (half a panel)
	aSize int // bytes per A element
	kUnit int // k values per panel row: 2 for BF16Pairs, 1 for F32
	bUnit int // bytes of a panel row (kUnit k values of 32 columns); 0 means 128
	bCol  int // bytes of one column in a panel row; 0 means 4
	// rows[r] computes only r < mr rows (nil: pad a partial row tile to mr)
	rows []tileFn
}

// forRows is mk for a row tile of r ≤ mr rows: the exact-row kernel when
// there is one, so that a short tile neither pads A nor stages C.
func (mk micro) forRows(r int) micro {
	if r < mk.mr && r < len(mk.rows) && mk.rows[r] != nil {
		mk.tile, mk.mr = mk.rows[r], r
	}
	return mk
}

// unitBytes is the size of a panel row, colBytes that of a column in it.
func (mk *micro) unitBytes() int { return cmp.Or(mk.bUnit, 128) }
func (mk *micro) colBytes() int  { return cmp.Or(mk.bCol, 4) }

// Cache blocking: a k block is kcUnits panel rows (128 bytes each) and a
// column block npBlock panels. The A tile of a row tile (14 rows × one k
// block) stays in L1 while the row tile sweeps the block's panels; the
// block's panels (at most 8 × 512 × 128 bytes = 512 KiB) stay in L2 while
// the row tiles of a task sweep it. Measured on Zen 5 with the encoder's
// shapes in 56- and 112-row tasks: with one worker any block of 8 to 64
// panels runs alike; with two workers streaming weights from the shared L3,
// 8-panel blocks ran 3–10% faster than whole-width ones in isolation (in the
// whole encoder the difference is within the noise of a shared machine).
const (
	kcUnits = 512
	npBlock = 8
	maxMR   = 14
)

// Scratch is per-goroutine working memory for the GEMM driver: a padded A
// tile for partial row tiles and a C tile for partial column tiles. The zero
// value is ready to use; it grows on first use and is then reused.
type Scratch struct {
	a    []byte
	c    [maxMR * PanelCols]float32
	bias [PanelCols]float32
}

func (s *Scratch) aTile(bytes int) []byte {
	if cap(s.a) < bytes {
		s.a = make([]byte, bytes)
	}
	return s.a[:bytes]
}

// MatMulBF16 computes C[m][N] = A·Bᵀ + bias (+ C when accum) with bf16
// activations: A is [m][KP] bf16 with row stride lda (rows may overlap), and
// when B.K is odd its column K must be zero. b must be BF16Pairs or Int8Cols
// (widened to the bf16 pairs of q·s: equal bit for bit to BF16Pairs holding
// q·s). bias is nil or has N values. It needs AVX512BF16 or Portable.
func (i ISA) MatMulBF16(c []float32, ldc int, a []uint16, lda, m int, b *Packed, bias []float32, accum bool, s *Scratch) error {
	if err := checkGemm(c, ldc, len(a), lda, m, b, bias, b.KP); err != nil {
		return err
	}
	if b.Format != BF16Pairs && b.Format != Int8Cols {
		return fmt.Errorf("kernels: MatMulBF16 needs a BF16Pairs or Int8Cols B, have format %d", b.Format)
	}
	mk, err := i.microBF16()
	if err != nil {
		return err
	}
	if m == 0 || b.N == 0 {
		return nil
	}
	if b.Format == Int8Cols {
		i.matMulInt8(unsafe.Pointer(&a[0]), 2, c, ldc, lda, m, b, bias, accum, s)
		return nil
	}
	drive(mk, c, ldc, unsafe.Pointer(&a[0]), lda, m, b, unsafe.Pointer(&b.BF16[0]), bias, accum, s)
	return nil
}

// MatMulF32 computes C[m][N] = A·Bᵀ + bias (+ C when accum) with float32
// activations A [m][K] (row stride lda; when B is BF16Pairs or Int8Cols with
// odd K, A needs a zero column K). b may be BF16Pairs (widened to fp32),
// Int8Cols (widened to q·s; equal bit for bit to BF16Pairs holding q·s) or
// Float32.
func (i ISA) MatMulF32(c []float32, ldc int, a []float32, lda, m int, b *Packed, bias []float32, accum bool, s *Scratch) error {
	kNeed := b.K
	if b.Format == BF16Pairs || b.Format == Int8Cols {
		kNeed = b.KP
	}
	if err := checkGemm(c, ldc, len(a), lda, m, b, bias, kNeed); err != nil {
		return err
	}
	if m == 0 || b.N == 0 {
		return nil
	}
	if b.Format == Int8Cols {
		i.matMulInt8(unsafe.Pointer(&a[0]), 4, c, ldc, lda, m, b, bias, accum, s)
		return nil
	}
	mk := i.microF32(b.Format)
	var bp unsafe.Pointer
	if b.Format == BF16Pairs {
		bp = unsafe.Pointer(&b.BF16[0])
	} else {
		bp = unsafe.Pointer(&b.F32[0])
	}
	drive(mk, c, ldc, unsafe.Pointer(&a[0]), lda, m, b, bp, bias, accum, s)
	return nil
}

// microBF16 is the micro-kernel of i for bf16 activations.
func (i ISA) microBF16() (micro, error) {
	switch {
	case i >= AVX512BF16:
		return micro{tile: bf16AVX512, mr: 14, nr: 32, aSize: 2, kUnit: 2, rows: rowsBF16AVX512[:]}, nil
	case i == Portable:
		return micro{tile: bf16Portable, mr: 14, nr: 32, aSize: 2, kUnit: 2}, nil
	}
	return micro{}, fmt.Errorf("kernels: bf16 activations need %s or %s, not %s", AVX512BF16, Portable, i)
}

// microF32 is the micro-kernel of i for float32 activations and B in
// format f (BF16Pairs widened to fp32, or Float32).
func (i ISA) microF32(f Format) micro {
	if f == BF16Pairs {
		switch {
		case i >= AVX512:
			return micro{tile: f32bf16AVX512, mr: 14, nr: 32, aSize: 4, kUnit: 2, rows: rowsF32BF16AVX512[:]}
		case i == AVX2:
			return micro{tile: f32bf16AVX2, mr: i.TileRows(), nr: 16, aSize: 4, kUnit: 2, rows: rowsF32BF16AVX2[:]}
		}
		return micro{tile: f32bf16Portable, mr: 14, nr: 32, aSize: 4, kUnit: 2}
	}
	switch {
	case i >= AVX512:
		return micro{tile: f32f32AVX512, mr: 14, nr: 32, aSize: 4, kUnit: 1, rows: rowsF32F32AVX512[:]}
	case i == AVX2:
		return micro{tile: f32f32AVX2, mr: i.TileRows(), nr: 16, aSize: 4, kUnit: 1, rows: rowsF32F32AVX2[:]}
	}
	return micro{tile: f32f32Portable, mr: 14, nr: 32, aSize: 4, kUnit: 1}
}

// TileRows is the number of A rows the GEMM micro-kernels of i compute per
// register tile: callers that split rows into blocks keep whole tiles
// (a partial tile runs an exact-row kernel at the assembly ISAs, and in full
// on a zero-padded copy at Portable).
func (i ISA) TileRows() int {
	if i == AVX2 {
		return 6
	}
	return 14
}

// checkGemm validates the operand extents so that the unchecked kernels
// stay inside their slices.
func checkGemm(c []float32, ldc, alen, lda, m int, b *Packed, bias []float32, k int) error {
	switch {
	case m < 0:
		return fmt.Errorf("kernels: gemm rows %d < 0", m)
	case m == 0 || b.N == 0:
		return nil
	case lda < 0:
		return fmt.Errorf("kernels: gemm A row stride %d < 0", lda)
	case alen < (m-1)*lda+k:
		return fmt.Errorf("kernels: gemm A holds %d values, [%d %d] with stride %d needs %d", alen, m, k, lda, (m-1)*lda+k)
	case ldc < b.N:
		return fmt.Errorf("kernels: gemm C row stride %d < N %d", ldc, b.N)
	case len(c) < (m-1)*ldc+b.N:
		return fmt.Errorf("kernels: gemm C holds %d values, [%d %d] with stride %d needs %d", len(c), m, b.N, ldc, (m-1)*ldc+b.N)
	case bias != nil && len(bias) < b.N:
		return fmt.Errorf("kernels: gemm bias has %d values, want %d", len(bias), b.N)
	}
	return nil
}

// drive runs the blocked loop nest: column blocks of npBlock panels, k blocks
// of kcUnits, row tiles of mk.mr, then the panels (or half panels) of the
// block. Partial row tiles read A from a zero-padded copy; partial column
// tiles go through a C tile in s.
func drive(mk micro, c []float32, ldc int, a unsafe.Pointer, lda, m int, b *Packed, bp unsafe.Pointer, bias []float32, accum bool, s *Scratch) {
	kUnits := b.K
	if mk.kUnit == 2 {
		kUnits = b.KP / 2
	}
	// A k block holds kcUnits·4 bytes of each A row (2 KiB), whatever the
	// element size: the 14-row A tile must stay in the 32 KiB L1 of Zen 4
	// (fp32 activations in 512 k-pair blocks, 4 KiB a row, spilled to L2).
	kc := kcUnits * 4 / (mk.aSize * mk.kUnit)
	panelBytes := kUnits * mk.unitBytes()
	ldaB, ldcB := uintptr(lda*mk.aSize), uintptr(ldc*4)
	panels := b.Panels()
	for p0 := 0; p0 < panels; p0 += npBlock {
		p1 := min(panels, p0+npBlock)
		for u0 := 0; u0 < kUnits; u0 += kc {
			nu := min(kc, kUnits-u0)
			first := u0 == 0
			acc := uintptr(0)
			if accum || !first {
				acc = 1
			}
			kOff := u0 * mk.kUnit // first k of the block
			for r0 := 0; r0 < m; r0 += mk.mr {
				rows := min(mk.mr, m-r0)
				mk := mk.forRows(rows)
				ap, ald := unsafe.Add(a, (r0*lda+kOff)*mk.aSize), ldaB
				if rows < mk.mr {
					ap, ald = s.padA(mk, ap, ldaB, rows, nu*mk.kUnit)
				}
				p := p0
				if rows == mk.mr && mk.nr == PanelCols {
					// One call sweeps the block's full panels.
					full := min(p1, b.N/PanelCols) - p0
					if full > 0 {
						var bb *float32
						if first && bias != nil {
							bb = &bias[p0*PanelCols]
						}
						mk.tile(ap, ald, unsafe.Add(bp, p0*panelBytes+u0*mk.unitBytes()), &c[r0*ldc+p0*PanelCols], ldcB, nu, bb, acc, full, uintptr(panelBytes))
						p += full
					}
				}
				for ; p < p1; p++ {
					for h := 0; h < PanelCols; h += mk.nr {
						col := p*PanelCols + h
						if col >= b.N {
							break
						}
						cols := min(mk.nr, b.N-col)
						bt := unsafe.Add(bp, p*panelBytes+u0*mk.unitBytes()+h*mk.colBytes())
						var bb *float32
						if first && bias != nil {
							if cols == mk.nr {
								bb = &bias[col]
							} else {
								clear(s.bias[:])
								copy(s.bias[:], bias[col:col+cols])
								bb = &s.bias[0]
							}
						}
						if rows == mk.mr && cols == mk.nr {
							mk.tile(ap, ald, bt, &c[r0*ldc+col], ldcB, nu, bb, acc, 1, 0)
							continue
						}
						s.partialC(mk, ap, ald, bt, c, ldc, r0, col, rows, cols, nu, bb, acc)
					}
				}
			}
		}
	}
}

// padA copies a partial row tile of the k block into a zero-padded A tile.
func (s *Scratch) padA(mk micro, ap unsafe.Pointer, ldaB uintptr, rows, k int) (unsafe.Pointer, uintptr) {
	rowBytes := k * mk.aSize
	t := s.aTile(mk.mr * rowBytes)
	clear(t[rows*rowBytes:])
	for r := 0; r < rows; r++ {
		copy(t[r*rowBytes:(r+1)*rowBytes], unsafe.Slice((*byte)(unsafe.Add(ap, uintptr(r)*ldaB)), rowBytes))
	}
	return unsafe.Pointer(&t[0]), uintptr(rowBytes)
}

// partialC runs one tile whose rows or columns overhang C through s.c.
func (s *Scratch) partialC(mk micro, ap unsafe.Pointer, ald uintptr, bt unsafe.Pointer, c []float32, ldc, r0, col, rows, cols, nu int, bb *float32, acc uintptr) {
	t := s.c[:mk.mr*mk.nr]
	clear(t)
	if acc != 0 {
		for r := 0; r < rows; r++ {
			copy(t[r*mk.nr:r*mk.nr+cols], c[(r0+r)*ldc+col:])
		}
	}
	mk.tile(ap, ald, bt, &t[0], uintptr(mk.nr*4), nu, bb, acc, 1, 0)
	for r := 0; r < rows; r++ {
		copy(c[(r0+r)*ldc+col:(r0+r)*ldc+col+cols], t[r*mk.nr:])
	}
}

// Bytes is the memory the scratch holds.
func (s *Scratch) Bytes() int { return cap(s.a) + 4*len(s.c) + 4*len(s.bias) }
