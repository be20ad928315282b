package backend

import (
	"fmt"
	"math"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// SelfAttention adds a pre-norm multi-head self-attention block to x in
// three parallel phases:
//
//  1. q/k/v projection of LN(x) in row blocks; the epilogue writes q (scaled,
//     in the activation precision) into the workspace and each head's k and v
//     straight into the layouts of the attention GEMMs (k as a [n][hd] B
//     operand, v as [hd][keys] operands, one per block of attnKeys keys);
//  2. flash attention, one task per head and 14 query rows: for each key
//     block, S = q·kᵀ, an online-softmax step (running max and sum, output
//     rescaled when the max grows), O += P·v; then O/sum overwrites the
//     task's q block (each task reads only its own q rows and head);
//  3. x += O·Woutᵀ + bout in row blocks.
//
// Scores and probabilities never leave a worker's L1-sized scratch.
func (c *CPU) SelfAttention(x Mat, norm *Norm, qkv Weight, qkvBias []float32, out Weight, outBias []float32, heads int, scale float32) error {
	pq, err := c.weight(qkv)
	if err != nil {
		return err
	}
	po, err := c.weight(out)
	if err != nil {
		return err
	}
	n, d := x.Rows, x.Cols
	if err := x.Check("attention input"); err != nil {
		return err
	}
	switch {
	case pq.K != d:
		return fmt.Errorf("attention: input has %d columns, q/k/v weight wants %d", d, pq.K)
	case qkvBias != nil && len(qkvBias) != pq.N:
		return fmt.Errorf("attention: q/k/v bias has %d values, want %d", len(qkvBias), pq.N)
	case heads <= 0 || d%heads != 0:
		return fmt.Errorf("attention: d_model %d is not a multiple of %d heads", d, heads)
	case pq.N != 3*d:
		return fmt.Errorf("attention: q/k/v weight gives %d features, want 3·%d", pq.N, d)
	case po.N != d || po.K != d:
		return fmt.Errorf("attention: output weight is [%d %d], want [%d %d]", po.N, po.K, d, d)
	case outBias != nil && len(outBias) != d:
		return fmt.Errorf("attention: output bias has %d values, want %d", len(outBias), d)
	}
	if err := checkNorm("attention", norm, d); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	ws, err := c.attnWork(n, d, heads)
	if err != nil {
		return err
	}
	defer c.releaseAttn(ws)
	err = c.forRows(n, qkvRows, func(s *cpuScratch, r0, r1 int) error {
		lda := c.stage(s, x, norm, r0, r1)
		ldc := rowStride(3*d, 4)
		s.c = grow(s.c, (r1-r0)*ldc)
		if err := c.matmul(s, s.c, ldc, lda, r1-r0, pq, qkvBias, false); err != nil {
			return err
		}
		return c.scatterQKV(s, ws, s.c, ldc, r0, r1, scale)
	})
	if err != nil {
		return fmt.Errorf("attention q/k/v: %w", err)
	}
	tiles := (n + c.qRows - 1) / c.qRows
	errs := make([]error, heads*tiles)
	c.pool.For(heads*tiles, func(w, i int) {
		h, r0 := i/tiles, (i%tiles)*c.qRows
		errs[i] = c.attendTile(&c.scratch[w], ws, h, r0, min(n, r0+c.qRows))
	})
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("attention: %w", err)
		}
	}
	err = c.forRows(n, linearRows, func(s *cpuScratch, r0, r1 int) error {
		dst := x.Data[r0*x.Stride:]
		if c.act == BF16 {
			return c.isa.MatMulBF16(dst, x.Stride, ws.q16[r0*ws.ldq:], ws.ldq, r1-r0, po, outBias, true, &s.gemm)
		}
		return c.isa.MatMulF32(dst, x.Stride, ws.q32[r0*ws.ldq:], ws.ldq, r1-r0, po, outBias, true, &s.gemm)
	})
	if err != nil {
		return fmt.Errorf("attention output projection: %w", err)
	}
	return nil
}

// scatterQKV distributes the projected rows [r0, r1) (c, row stride ldc:
// q, then k, then v) into the workspace.
func (c *CPU) scatterQKV(s *cpuScratch, ws *attnWork, qkv []float32, ldc, r0, r1 int, scale float32) error {
	d, hd, rows := ws.d, ws.d/ws.heads, r1-r0
	s.tmp = grow(s.tmp, 2*max(hd, 1))
	for r := range rows {
		q := qkv[r*ldc : r*ldc+d]
		if c.act == BF16 {
			c.isa.ScaleBF16(ws.q16[(r0+r)*ws.ldq:], q, scale)
		} else {
			c.isa.Scale(ws.q32[(r0+r)*ws.ldq:(r0+r)*ws.ldq+d], q, scale)
		}
	}
	for h := range ws.heads {
		k := qkv[d+h*hd:]
		var err error
		if c.act == BF16 {
			err = c.isa.PutRowsBF16(&ws.k[h], r0, k, rows, ldc, s.tmp)
		} else {
			err = kernels.PutRowsF32(&ws.k[h], r0, k, rows, ldc)
		}
		if err != nil {
			return err
		}
		// v rows are columns of the per-block [hd][keys] operands.
		for j := r0; j < r1; {
			b, off := j/attnKeys, j%attnKeys
			cnt := min(r1-j, attnKeys-off)
			v := qkv[(j-r0)*ldc+2*d+h*hd:]
			vb := &ws.v[h*ws.blocks+b]
			if c.act == BF16 {
				err = c.isa.PutColsBF16(vb, off, v, cnt, ldc, s.tmp)
			} else {
				err = kernels.PutColsF32(vb, off, v, cnt, ldc)
			}
			if err != nil {
				return err
			}
			j += cnt
		}
	}
	return nil
}

// attendTile computes the attention output of query rows [r0, r1) of head h
// and writes it over their q.
func (c *CPU) attendTile(s *cpuScratch, ws *attnWork, h, r0, r1 int) error {
	m, n, hd := r1-r0, ws.n, ws.d/ws.heads
	kb := min((n+kernels.PanelCols-1)&^(kernels.PanelCols-1), attnKeys) // score columns per block
	ldp := kb                                                           // probability row stride (even: k-pairs)
	s.c = grow(s.c, attnRows*kb)                                        // scores [m][kb]
	s.o = grow(s.o, attnRows*hd)
	clear(s.o)
	for r := range m {
		s.m[r], s.l[r] = float32(math.Inf(-1)), 0
	}
	col := h * hd
	var q16 []uint16
	var q32 []float32
	lda := ws.ldq
	if c.act == BF16 {
		q16 = ws.q16[r0*ws.ldq+col:]
		if hd%2 != 0 { // a k-pair would straddle two heads: copy with a zero pad
			lda = hd + 1
			s.a16 = grow(s.a16, m*lda)
			for r := range m {
				copy(s.a16[r*lda:], q16[r*ws.ldq:r*ws.ldq+hd])
				s.a16[r*lda+hd] = 0
			}
			q16 = s.a16
		}
		s.h16 = grow(s.h16, attnRows*ldp)
	} else {
		q32 = ws.q32[r0*ws.ldq+col:]
		s.h32 = grow(s.h32, attnRows*ldp)
	}
	kh := &ws.k[h]
	for b := range ws.blocks {
		j0 := b * attnKeys
		nb := min(attnKeys, n-j0)
		// Scores for whole panels: the packed k's pad keys are zero and the
		// softmax reads only the nb real columns (no partial-panel tile).
		key := kernels.Packed{Format: kh.Format, N: min(kb, (nb+kernels.PanelCols-1)&^(kernels.PanelCols-1)), K: kh.K, KP: kh.KP}
		vb := &ws.v[h*ws.blocks+b]
		var err error
		if c.act == BF16 {
			key.BF16 = kh.BF16[j0*kh.KP:]
			if err = c.isa.MatMulBF16(s.c, kb, q16, lda, m, &key, nil, false, &s.gemm); err != nil {
				return err
			}
			if err = c.isa.SoftmaxBlockBF16(s.h16, ldp, s.c, kb, m, nb, s.m[:], s.l[:], s.o, hd, hd); err != nil {
				return err
			}
			err = c.isa.MatMulBF16(s.o, hd, s.h16, ldp, m, vb, nil, true, &s.gemm)
		} else {
			key.F32 = kh.F32[j0*kh.K:]
			if err = c.isa.MatMulF32(s.c, kb, q32, lda, m, &key, nil, false, &s.gemm); err != nil {
				return err
			}
			if err = c.isa.SoftmaxBlockF32(s.h32, ldp, s.c, kb, m, nb, s.m[:], s.l[:], s.o, hd, hd); err != nil {
				return err
			}
			err = c.isa.MatMulF32(s.o, hd, s.h32, ldp, m, vb, nil, true, &s.gemm)
		}
		if err != nil {
			return err
		}
	}
	for r := range m {
		s.inv[r] = 1 / s.l[r]
	}
	if c.act == BF16 {
		return c.isa.ScaleRowsBF16(ws.q16[r0*ws.ldq+col:], ws.ldq, s.o, hd, m, hd, s.inv[:])
	}
	return c.isa.ScaleRows(ws.q32[r0*ws.ldq+col:], ws.ldq, s.o, hd, m, hd, s.inv[:])
}

// attnWork is the workspace of one SelfAttention call, in memory outside
// the Go heap: q (then the attention output) [n][ldq], each head's k
// ([n][hd] B operand) and v (one [hd][keys] B operand per key block).
type attnWork struct {
	n, d, heads, blocks, ldq int
	q16                      []uint16
	q32                      []float32
	k, v                     []kernels.Packed
	mem                      []byte
	free                     func()
}

// attnWork takes a workspace for n rows of width d from the free list,
// reshaping or replacing it when its shape differs.
func (c *CPU) attnWork(n, d, heads int) (*attnWork, error) {
	c.mu.Lock()
	var ws *attnWork
	if k := len(c.free); k > 0 {
		ws = c.free[k-1]
		c.free = c.free[:k-1]
	}
	c.mu.Unlock()
	if ws != nil && ws.n == n && ws.d == d && ws.heads == heads {
		return ws, nil
	}
	if ws != nil {
		ws.release()
	}
	return c.newAttnWork(n, d, heads)
}

func (c *CPU) releaseAttn(ws *attnWork) {
	c.mu.Lock()
	c.free = append(c.free, ws)
	c.mu.Unlock()
}

func (ws *attnWork) release() {
	if ws.free != nil {
		ws.free()
		ws.free = nil
	}
}

// newAttnWork lays out a zeroed workspace: every entry the projection
// epilogue does not write (padding) stays zero for the workspace's life.
func (c *CPU) newAttnWork(n, d, heads int) (*attnWork, error) {
	hd := d / heads
	f, size := kernels.BF16Pairs, 2
	if c.act == FP32 {
		f, size = kernels.Float32, 4
	}
	ws := &attnWork{n: n, d: d, heads: heads, blocks: (n + attnKeys - 1) / attnKeys, ldq: rowStride((d+1)&^1, size)}
	ws.k, ws.v = make([]kernels.Packed, heads), make([]kernels.Packed, heads*ws.blocks)
	total := n * ws.ldq
	for range heads {
		total += kernels.PackedLen(f, n, hd)
		for b := range ws.blocks {
			total += kernels.PackedLen(f, hd, min(attnKeys, n-b*attnKeys))
		}
	}
	mem, free, err := offHeap(size * total)
	if err != nil {
		return nil, fmt.Errorf("attention workspace of %d bytes: %w", size*total, err)
	}
	ws.mem, ws.free = mem, free
	off := n * ws.ldq
	place := func(p *kernels.Packed, rows, cols int) {
		l := kernels.PackedLen(f, rows, cols)
		if f == kernels.BF16Pairs {
			p.BF16 = view[uint16](mem, total)[off : off : off+l]
		} else {
			p.F32 = view[float32](mem, total)[off : off : off+l]
		}
		p.Resize(f, rows, cols)
		off += l
	}
	if f == kernels.BF16Pairs {
		ws.q16 = view[uint16](mem, total)[:n*ws.ldq]
	} else {
		ws.q32 = view[float32](mem, total)[:n*ws.ldq]
	}
	for h := range heads {
		place(&ws.k[h], n, hd)
		for b := range ws.blocks {
			place(&ws.v[h*ws.blocks+b], hd, min(attnKeys, n-b*attnKeys))
		}
	}
	return ws, nil
}

// Bytes is the memory the workspace holds.
func (ws *attnWork) Bytes() int { return len(ws.mem) }
