package backend

import (
	"fmt"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// The operations of a decode step. A step has few rows (one per sequence
// of the batch, or a prompt's rows) against wide weights, so its GEMMs are
// split over blocks of output columns, not rows; and its token embeddings
// are rows gathered out of a packed weight (the tied output projection).

// colTasksPerWorker bounds the column blocks of LinearCols: each task
// stages (and normalises) all input rows once, so a handful per worker
// balances the load without repeating that work many times.
const colTasksPerWorker = 4

// LinearCols computes dst (+)= x·Wᵀ + bias exactly as Linear does, in
// parallel over blocks of W's output columns (whole 32-column panels)
// instead of row blocks: the form for a decode step's few rows, where a
// row split would leave all but one worker idle. A single fp32 row runs
// as matrix-vector products (kernels.MatVecF32, equal bit for bit).
func (c *CPU) LinearCols(dst, src Mat, norm *Norm, w Weight, bias []float32, accumulate bool) error {
	b, err := c.weight(w)
	if err != nil {
		return err
	}
	if err := checkLinear("linear", dst, src, b.N, b.K, bias); err != nil {
		return err
	}
	if err := checkNorm("linear", norm, src.Cols); err != nil {
		return err
	}
	m, panels := src.Rows, b.Panels()
	if m == 0 || panels == 0 {
		return nil
	}
	per := (panels + colTasksPerWorker*c.pool.Workers() - 1) / (colTasksPerWorker * c.pool.Workers())
	tasks := (panels + per - 1) / per
	errs := make([]error, tasks)
	c.pool.For(tasks, func(wk, i int) {
		s := &c.scratch[wk]
		p0, p1 := i*per, min(panels, (i+1)*per)
		col0 := p0 * kernels.PanelCols
		sub := b.Cols(p0, p1)
		var bb []float32
		if bias != nil {
			bb = bias[col0:]
		}
		lda := c.stage(s, src, norm, 0, m)
		if m == 1 && c.act == FP32 && b.Format == kernels.BF16Pairs { // one row: no GEMM tile padding, same results
			errs[i] = c.isa.MatVecF32(dst.Data[col0:col0+sub.N], s.a32[:sub.KP], &sub, bb, accumulate, &s.gemm)
			return
		}
		errs[i] = c.matmul(s, dst.Data[col0:], dst.Stride, lda, m, &sub, bb, accumulate)
	})
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("linear (column blocks): %w", err)
		}
	}
	return nil
}

// Rows writes rows ids of the packed weight w [out][in], widened to
// float32 (from bf16, or q·s for int8 weights), into the rows of dst
// ([len(ids)][in]): an embedding lookup in a table packed for the GEMMs (a
// tied output projection).
func (c *CPU) Rows(dst Mat, w Weight, ids []int) error {
	b, err := c.weight(w)
	if err != nil {
		return err
	}
	if err := dst.Check("rows output"); err != nil {
		return err
	}
	if dst.Rows != len(ids) || dst.Cols != b.K {
		return fmt.Errorf("rows: output is [%d %d], want [%d %d]", dst.Rows, dst.Cols, len(ids), b.K)
	}
	for r, n := range ids {
		if n < 0 || n >= b.N {
			return fmt.Errorf("rows: row %d of %d is out of range (id %d of %d)", n, b.N, r, len(ids))
		}
		if err := b.RowF32(dst.Row(r), n); err != nil {
			return fmt.Errorf("rows: %w", err)
		}
	}
	return nil
}
