package backend

import (
	"fmt"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// Attention computes softmax(scale·q·kᵀ)·v for every head of qkv [n][3d].
//
// Each head's K and V are packed once (as GEMM B operands: K as [n][hd],
// V transposed as [hd][n]), then tasks of 14 query rows per head run
// S = (scale·q)·kᵀ, P = exp(S − max) row by row, O = P·V and finally divide
// each row by its sum while writing it into dst: the scores never leave a
// worker's scratch (14 × n floats).
func (c *CPU) Attention(dst, qkv Mat, heads int, scale float32) error {
	if err := qkv.Check("attention qkv"); err != nil {
		return err
	}
	if err := dst.Check("attention output"); err != nil {
		return err
	}
	n, d := qkv.Rows, qkv.Cols/3
	switch {
	case heads <= 0 || qkv.Cols%3 != 0 || d%heads != 0:
		return fmt.Errorf("attention: qkv has %d columns, want 3·d with d a multiple of %d heads", qkv.Cols, heads)
	case dst.Rows != n || dst.Cols != d:
		return fmt.Errorf("attention: output is [%d %d], want [%d %d]", dst.Rows, dst.Cols, n, d)
	case n == 0:
		return nil
	}
	hd := d / heads
	ws := c.attnPacks(heads)
	defer c.releaseAttn(ws)
	// Scaled q for every head, rounded to the activation precision once.
	if c.act == BF16 {
		ws.q16 = grow(ws.q16, n*d)
		c.forRows(n, linearRows, func(_ *cpuScratch, r0, r1 int) error {
			for r := r0; r < r1; r++ {
				c.isa.ScaleBF16(ws.q16[r*d:(r+1)*d], qkv.Row(r)[:d], scale)
			}
			return nil
		})
	} else {
		ws.q32 = grow(ws.q32, n*d)
		c.forRows(n, linearRows, func(_ *cpuScratch, r0, r1 int) error {
			for r := r0; r < r1; r++ {
				c.isa.Scale(ws.q32[r*d:(r+1)*d], qkv.Row(r)[:d], scale)
			}
			return nil
		})
	}
	errs := make([]error, 2*heads)
	c.pool.For(2*heads, func(_, i int) {
		h := i / 2
		k := qkv.Data[d+h*hd:]
		v := qkv.Data[2*d+h*hd:]
		switch {
		case i%2 == 0 && c.act == BF16:
			errs[i] = c.isa.PackBF16FromF32(&ws.k[h], k, n, hd, qkv.Stride)
		case i%2 == 0:
			errs[i] = kernels.PackF32(&ws.k[h], k, n, hd, qkv.Stride)
		case c.act == BF16:
			errs[i] = c.isa.PackBF16FromF32T(&ws.v[h], v, hd, n, qkv.Stride)
		default:
			errs[i] = kernels.PackF32T(&ws.v[h], v, hd, n, qkv.Stride)
		}
	})
	tiles := (n + attnRows - 1) / attnRows
	tileErrs := make([]error, heads*tiles)
	c.pool.For(heads*tiles, func(w, i int) {
		h, r0 := i/tiles, (i%tiles)*attnRows
		tileErrs[i] = c.attendTile(&c.scratch[w], dst, ws, n, d, &ws.k[h], &ws.v[h], h*hd, hd, r0, min(n, r0+attnRows))
	})
	for _, err := range append(errs, tileErrs...) {
		if err != nil {
			return fmt.Errorf("attention: %w", err)
		}
	}
	return nil
}

// attendTile computes the output rows [r0, r1) of one head whose columns
// start at col.
func (c *CPU) attendTile(s *cpuScratch, dst Mat, ws *attnPacks, n, d int, k, v *kernels.Packed, col, hd, r0, r1 int) error {
	m := r1 - r0
	nP := (n + 1) &^ 1
	s.c = grow(s.c, m*n)
	s.o = grow(s.o, m*hd)
	if c.act == BF16 {
		q, lda := ws.q16[r0*d+col:], d
		if hd%2 != 0 { // a k-pair would straddle two heads: copy with a zero pad
			lda = hd + 1
			s.a16 = grow(s.a16, m*lda)
			for r := range m {
				copy(s.a16[r*lda:], q[r*d:r*d+hd])
				s.a16[r*lda+hd] = 0
			}
			q = s.a16
		}
		if err := c.isa.MatMulBF16(s.c, n, q, lda, m, k, nil, false, &s.gemm); err != nil {
			return err
		}
		s.h16 = grow(s.h16, m*nP)
		for r := range m {
			p := s.h16[r*nP : (r+1)*nP]
			s.sums[r] = c.isa.SoftmaxBF16(p, s.c[r*n:(r+1)*n])
			if nP != n {
				p[n] = 0
			}
		}
		if err := c.isa.MatMulBF16(s.o, hd, s.h16, nP, m, v, nil, false, &s.gemm); err != nil {
			return err
		}
	} else {
		s.a32 = grow(s.a32, m*nP)
		if err := c.isa.MatMulF32(s.c, n, ws.q32[r0*d+col:], d, m, k, nil, false, &s.gemm); err != nil {
			return err
		}
		for r := range m {
			s.sums[r] = c.isa.SoftmaxF32(s.a32[r*nP:r*nP+n], s.c[r*n:(r+1)*n])
		}
		if err := c.isa.MatMulF32(s.o, hd, s.a32, nP, m, v, nil, false, &s.gemm); err != nil {
			return err
		}
	}
	for r := range m {
		c.isa.Scale(dst.Row(r0 + r)[col:col+hd], s.o[r*hd:(r+1)*hd], 1/s.sums[r])
	}
	return nil
}

// attnPacks takes a workspace for heads heads from the free list.
func (c *CPU) attnPacks(heads int) *attnPacks {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := len(c.free); k > 0 {
		ws := c.free[k-1]
		c.free = c.free[:k-1]
		if len(ws.k) >= heads {
			return ws
		}
	}
	return &attnPacks{k: make([]kernels.Packed, heads), v: make([]kernels.Packed, heads)}
}

func (c *CPU) releaseAttn(ws *attnPacks) {
	c.mu.Lock()
	c.free = append(c.free, ws)
	c.mu.Unlock()
}
