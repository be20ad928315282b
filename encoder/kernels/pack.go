package kernels

import (
	"fmt"
	"unsafe"
)

// PanelCols is the number of B rows (output columns) in one packed panel.
const PanelCols = 32

// Format is the element type of a packed B matrix.
type Format uint8

const (
	// BF16Pairs stores bf16 values with consecutive k interleaved in pairs,
	// the operand layout of VDPBF16PS (and of the widening fp32 kernels).
	BF16Pairs Format = iota
	// Float32 stores float32 values, one k per panel row.
	Float32
	// Int8Cols stores weight-only int8 values with a power-of-two float32
	// scale per column (see PackInt8), one k per panel row.
	Int8Cols
)

// Packed is a B matrix of logical shape [N][K] (a Linear weight [out][in])
// laid out for the GEMM micro-kernels as ceil(N/32) panels of 32 columns:
//
//	BF16Pairs: B[32p+c][2q+j] at BF16[p·KP·32 + q·64 + 2c + j]
//	Float32:   B[32p+c][k]    at F32[p·K·32 + k·32 + c]
//	Int8Cols:  B[32p+c][k]    = I8[p·KP·32 + k·32 + c] · Scale[32p+c]
//
// Entries for columns ≥ N and for k ≥ K (the odd-K pad) are zero (their
// Int8Cols scale is 1).
type Packed struct {
	Format Format
	N, K   int
	KP     int // K rounded up to even: the k extent of a BF16Pairs or Int8Cols panel
	BF16   []uint16
	F32    []float32
	I8     []int8    // Int8Cols values
	Scale  []float32 // Int8Cols column scales, Panels()·32 of them
}

// Panels is the number of 32-column panels.
func (p *Packed) Panels() int { return (p.N + PanelCols - 1) / PanelCols }

// Bytes is the memory the packed data holds.
func (p *Packed) Bytes() int { return 2*len(p.BF16) + 4*len(p.F32) + len(p.I8) + 4*len(p.Scale) }

// PackedLen is the number of elements (bf16, float32 or int8; not counting
// the Int8Cols scales) a packed [n][k] matrix of format f holds.
func PackedLen(f Format, n, k int) int {
	panels := (n + PanelCols - 1) / PanelCols
	if f == BF16Pairs || f == Int8Cols {
		return panels * PanelCols * ((k + 1) &^ 1)
	}
	return panels * PanelCols * k
}

// resize shapes p for an [n][k] matrix of format f, reusing its buffers
// when large enough, and zeroes the data.
func (p *Packed) resize(f Format, n, k int) {
	p.reshape(f, n, k)
	clear(p.BF16)
	clear(p.F32)
	clear(p.I8)
	for i := range p.Scale {
		p.Scale[i] = 1
	}
}

// reshapePad shapes p like resize but zeroes only the padding columns of the
// last panel (columns ≥ n): for packers that write every other entry.
func (p *Packed) reshapePad(f Format, n, k int) {
	p.reshape(f, n, k)
	if n%PanelCols == 0 {
		return
	}
	last := p.Panels() - 1
	switch f {
	case BF16Pairs:
		panel := p.BF16[last*p.KP*PanelCols:]
		for q := 0; q < p.KP/2; q++ {
			clear(panel[q*2*PanelCols+2*(n%PanelCols) : (q+1)*2*PanelCols])
		}
	default:
		panel := p.F32[last*k*PanelCols:]
		for j := 0; j < k; j++ {
			clear(panel[j*PanelCols+n%PanelCols : (j+1)*PanelCols])
		}
	}
}

// reshape sets the shape and sizes the buffers without clearing them.
func (p *Packed) reshape(f Format, n, k int) {
	p.Format, p.N, p.K, p.KP = f, n, k, (k+1)&^1
	size := p.Panels() * PanelCols
	p.I8, p.Scale = p.I8[:0], p.Scale[:0]
	switch f {
	case Int8Cols:
		p.I8 = grow(p.I8, size*p.KP)
		p.Scale = grow(p.Scale, size)
		p.BF16, p.F32 = p.BF16[:0], p.F32[:0]
	case BF16Pairs:
		size *= p.KP
		if cap(p.BF16) < size {
			p.BF16 = make([]uint16, size)
		}
		p.BF16 = p.BF16[:size]
		p.F32 = p.F32[:0]
	default:
		size *= k
		if cap(p.F32) < size {
			p.F32 = make([]float32, size)
		}
		p.F32 = p.F32[:size]
		p.BF16 = p.BF16[:0]
	}
}

// bf16Index is the position of B[n][k] in a BF16Pairs panel set.
func (p *Packed) bf16Index(n, k int) int {
	return (n/PanelCols)*p.KP*PanelCols + (k/2)*2*PanelCols + (n%PanelCols)*2 + k%2
}

func checkSrc(what string, have, n, k, ld int) error {
	if n < 0 || k < 0 || ld < 0 {
		return fmt.Errorf("kernels: pack %s: negative shape [%d %d] stride %d", what, n, k, ld)
	}
	if n > 0 && k > 0 && have < (n-1)*ld+k {
		return fmt.Errorf("kernels: pack %s: source holds %d values, [%d %d] with stride %d needs %d", what, have, n, k, ld, (n-1)*ld+k)
	}
	return nil
}

// PackBF16 packs the bf16 matrix src [n][k] (row stride ld) into dst as BF16Pairs.
func PackBF16(dst *Packed, src []uint16, n, k, ld int) error {
	if err := checkSrc("bf16 [n][k]", len(src), n, k, ld); err != nil {
		return err
	}
	dst.reshapePad(BF16Pairs, n, k)
	words := dst.words()
	if k%2 == 1 {
		for r := 0; r < n; r++ {
			dst.packRow(words, r, src[r*ld:r*ld+k])
		}
		return nil
	}
	// Even K: each panel is a transpose of k-pair words, done in blocks of
	// 16 pairs × 32 rows so that the 2 KiB being written stays in L1.
	const pairs = 16
	kq := k / 2
	for p0 := 0; p0 < n; p0 += PanelCols {
		panel := words[(p0/PanelCols)*kq*PanelCols:][:kq*PanelCols]
		rows := min(PanelCols, n-p0)
		for q0 := 0; q0 < kq; q0 += pairs {
			q1 := min(kq, q0+pairs)
			for c := range rows {
				row := src[(p0+c)*ld+2*q0 : (p0+c)*ld+2*q1]
				w := panel[q0*PanelCols+c:]
				for j := 0; 2*j+1 < len(row); j++ {
					w[j*PanelCols] = uint32(row[2*j]) | uint32(row[2*j+1])<<16
				}
			}
		}
	}
	return nil
}

// words views the BF16Pairs data as k-pair words (low half the even k).
func (p *Packed) words() []uint32 {
	if len(p.BF16) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(p.BF16))), len(p.BF16)/2)
}

// packRow writes row r (K bf16 values) of a BF16Pairs matrix: its k-pairs
// are 32 words apart in the row's panel. An odd K gets a zero pad.
func (p *Packed) packRow(words []uint32, r int, row []uint16) {
	base := (r/PanelCols)*p.KP/2*PanelCols + r%PanelCols
	w := words[base : base+(p.KP/2-1)*PanelCols+1]
	q := 0
	for ; 2*q+1 < len(row); q++ {
		w[q*PanelCols] = uint32(row[2*q]) | uint32(row[2*q+1])<<16
	}
	if len(row)%2 == 1 {
		w[q*PanelCols] = uint32(row[2*q])
	}
}

// Resize makes p an [n][k] matrix of format f with every entry zero, reusing
// its buffer (BF16 or F32, by format) when the capacity suffices. The Put
// methods then fill it row by row or column by column.
func (p *Packed) Resize(f Format, n, k int) { p.resize(f, n, k) }

// PutRowsBF16 rounds rows [r0, r0+rows) of a BF16Pairs matrix p [N][K] to
// bf16 from src (row i at src[i·ld : i·ld+K]) and writes them; tmp is
// scratch of at least K values.
func (i ISA) PutRowsBF16(p *Packed, r0 int, src []float32, rows, ld int, tmp []uint16) error {
	if err := p.checkPut(BF16Pairs, "rows", r0, rows, p.N, len(src), ld, p.K, len(tmp)); err != nil {
		return err
	}
	words, row := p.words(), tmp[:p.K]
	for r := range rows {
		if i >= AVX512BF16 && p.K%2 == 0 && p.K > 0 {
			n := r0 + r
			base := (n/PanelCols)*p.KP/2*PanelCols + n%PanelCols
			_ = words[base+(p.K/2-1)*PanelCols] // the kernel's last store
			scatterPairsBF16AVX512(&words[base], &src[r*ld], p.K/2)
			continue
		}
		i.ToBF16(row, src[r*ld:r*ld+p.K])
		p.packRow(words, r0+r, row)
	}
	return nil
}

// PutColsBF16 rounds columns [c0, c0+cols) of a BF16Pairs matrix p [N][K]
// to bf16 from src (column j, N values, at src[j·ld : j·ld+N]) and writes
// them: the layout of a transposed operand filled from its source rows.
// tmp is scratch of at least 2·N values.
func (i ISA) PutColsBF16(p *Packed, c0 int, src []float32, cols, ld int, tmp []uint16) error {
	if err := p.checkPut(BF16Pairs, "columns", c0, cols, p.K, len(src), ld, p.N, len(tmp)/2); err != nil {
		return err
	}
	words := p.words()
	a, b := tmp[:p.N], tmp[p.N:2*p.N]
	j := 0
	if c0%2 == 1 { // finish a pair begun by an earlier call
		i.ToBF16(a, src[:p.N])
		p.putHalf(c0, a)
		j = 1
	}
	for ; j+1 < cols; j += 2 {
		q := (c0 + j) / 2
		if i >= AVX512BF16 {
			sa, sb := src[j*ld:j*ld+p.N], src[(j+1)*ld:(j+1)*ld+p.N]
			for pn := 0; pn*PanelCols < p.N; pn++ {
				w := words[pn*p.KP/2*PanelCols+q*PanelCols:][:PanelCols]
				pairsBF16AVX512(&w[0], &sa[pn*PanelCols], &sb[pn*PanelCols], min(PanelCols, p.N-pn*PanelCols))
			}
			continue
		}
		i.ToBF16(a, src[j*ld:j*ld+p.N])
		i.ToBF16(b, src[(j+1)*ld:(j+1)*ld+p.N])
		for pn := 0; pn*PanelCols < p.N; pn++ {
			w := words[pn*p.KP/2*PanelCols+q*PanelCols:][:PanelCols]
			lo, hi := a[pn*PanelCols:min(p.N, (pn+1)*PanelCols)], b[pn*PanelCols:]
			for c, v := range lo {
				w[c] = uint32(v) | uint32(hi[c])<<16
			}
		}
	}
	if j < cols {
		i.ToBF16(a, src[j*ld:j*ld+p.N])
		p.putHalf(c0+j, a)
	}
	return nil
}

// putHalf writes column k of a BF16Pairs matrix (one half of each k-pair word).
func (p *Packed) putHalf(k int, col []uint16) {
	for n, v := range col {
		p.BF16[p.bf16Index(n, k)] = v
	}
}

// PutRowsF32 copies rows [r0, r0+rows) of a Float32 matrix p [N][K] from src
// (row i at src[i·ld : i·ld+K]).
func PutRowsF32(p *Packed, r0 int, src []float32, rows, ld int) error {
	if err := p.checkPut(Float32, "rows", r0, rows, p.N, len(src), ld, p.K, p.K); err != nil {
		return err
	}
	for r := range rows {
		n := r0 + r
		d := p.F32[(n/PanelCols)*p.K*PanelCols+n%PanelCols:]
		for k, v := range src[r*ld : r*ld+p.K] {
			d[k*PanelCols] = v
		}
	}
	return nil
}

// PutColsF32 copies columns [c0, c0+cols) of a Float32 matrix p [N][K] from
// src (column j, N values, at src[j·ld : j·ld+N]).
func PutColsF32(p *Packed, c0 int, src []float32, cols, ld int) error {
	if err := p.checkPut(Float32, "columns", c0, cols, p.K, len(src), ld, p.N, p.N); err != nil {
		return err
	}
	for j := range cols {
		col := src[j*ld : j*ld+p.N]
		for pn := 0; pn*PanelCols < p.N; pn++ {
			copy(p.F32[pn*p.K*PanelCols+(c0+j)*PanelCols:][:PanelCols], col[pn*PanelCols:min(p.N, (pn+1)*PanelCols)])
		}
	}
	return nil
}

func (p *Packed) checkPut(f Format, what string, i0, count, limit, srcLen, ld, width, tmp int) error {
	switch {
	case p.Format != f:
		return fmt.Errorf("kernels: put %s: packed format %d, want %d", what, p.Format, f)
	case i0 < 0 || count < 0 || i0+count > limit:
		return fmt.Errorf("kernels: put %s [%d, %d) of a packed [%d %d]", what, i0, i0+count, p.N, p.K)
	case count > 0 && (ld < 0 || srcLen < (count-1)*ld+width):
		return fmt.Errorf("kernels: put %s: source holds %d values, %d of %d with stride %d need %d", what, srcLen, count, width, ld, (count-1)*ld+width)
	case tmp < width:
		return fmt.Errorf("kernels: put %s: scratch of %d values, want %d", what, tmp, width)
	}
	return nil
}

// PackF32 packs the float32 matrix src [n][k] (row stride ld) into dst as Float32.
func PackF32(dst *Packed, src []float32, n, k, ld int) error {
	if err := checkSrc("f32 [n][k]", len(src), n, k, ld); err != nil {
		return err
	}
	dst.resize(Float32, n, k)
	for i := 0; i < n; i++ {
		base := (i/PanelCols)*k*PanelCols + i%PanelCols
		for j, v := range src[i*ld : i*ld+k] {
			dst.F32[base+j*PanelCols] = v
		}
	}
	return nil
}
