package backend

import (
	"fmt"
	"sync"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// Precision is the element type of the activations fed to the weight GEMMs
// and attention products (accumulation is always float32).
type Precision uint8

const (
	// BF16 rounds activations to bfloat16 before each GEMM (VDPBF16PS).
	BF16 Precision = iota
	// FP32 keeps activations in float32 (BF16 weights widened to fp32).
	FP32
)

// String is "bf16" or "fp32".
func (p Precision) String() string {
	if p == BF16 {
		return "bf16"
	}
	return "fp32"
}

// Row-block limits of the parallel loops; taskRows balances the blocks
// over the workers and rounds them to whole register tiles of the kernels
// (14 rows, 6 for avx2).
const (
	linearRows = 112 // rows per Linear task
	mlpRows    = 56  // rows per MLP task: its [rows][ffn] hidden block stays in L2
	qkvRows    = 56  // rows per q/k/v projection task ([rows][3d] output block)
	attnRows   = 14  // at most this many query rows per attention task (qRows)
	attnKeys   = 256 // keys per attention block: the block's scores stay in L1
)

// CPU is the CPU backend: kernels from encoder/kernels at one ISA, a fixed
// worker pool, and per-worker scratch reused across calls.
type CPU struct {
	isa     kernels.ISA
	act     Precision
	tile    int // rows per GEMM register tile of isa
	qRows   int // query rows per attention task: whole tiles, at most attnRows
	pool    *Pool
	scratch []cpuScratch // per worker
	mu      sync.Mutex   // guards free
	free    []*attnWork  // attention workspaces not in use
	weights arena        // the packed weights
}

// cpuScratch is one worker's working memory; it grows to the largest shape
// seen and is then reused.
type cpuScratch struct {
	gemm kernels.Scratch
	a16  []uint16  // bf16 A rows
	a32  []float32 // fp32 A rows
	row  []float32 // one normalised row
	c    []float32 // GEMM output block (MLP hidden, q/k/v rows, attention scores)
	h16  []uint16  // bf16 GELU output / attention probabilities
	h32  []float32 // fp32 attention probabilities
	o    []float32 // attention output accumulator [attnRows][head dim]
	tmp  []uint16  // packing scratch
	m, l [attnRows]float32
	inv  [attnRows]float32
}

// NewCPU returns a CPU backend running the kernels at isa with activations
// of precision act on threads workers (GOMAXPROCS when ≤ 0). bf16
// activations need kernels.AVX512BF16 or kernels.Portable.
func NewCPU(isa kernels.ISA, act Precision, threads int) (*CPU, error) {
	if err := isa.Check(); err != nil {
		return nil, err
	}
	if act == BF16 && isa != kernels.AVX512BF16 && isa != kernels.Portable {
		return nil, fmt.Errorf("backend: bf16 activations need the %s or %s kernels, not %s", kernels.AVX512BF16, kernels.Portable, isa)
	}
	p := NewPool(threads)
	tile := isa.TileRows()
	return &CPU{isa: isa, act: act, tile: tile, qRows: attnRows / tile * tile, pool: p, scratch: make([]cpuScratch, p.Workers())}, nil
}

// Name is "cpu/<isa>/<activation precision>".
func (c *CPU) Name() string { return fmt.Sprintf("cpu/%s/%s", c.isa, c.act) }

// Pool is the backend's worker pool, for the encoder's own row loops.
func (c *CPU) Pool() *Pool { return c.pool }

// ISA is the kernel level the backend runs at.
func (c *CPU) ISA() kernels.ISA { return c.isa }

// Close stops the workers and releases the packed weights; the backend and
// its weights must not be used afterwards.
func (c *CPU) Close() {
	c.pool.Close()
	c.weights.free()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ws := range c.free {
		ws.release()
	}
	c.free = nil
}

// cpuWeight is a weight packed as bf16 k-pair panels (kernels.Packed).
type cpuWeight struct{ p kernels.Packed }

// Shape is the logical [out, in] shape.
func (w *cpuWeight) Shape() (int, int) { return w.p.N, w.p.K }

// Bytes is the size of the packed panels.
func (w *cpuWeight) Bytes() int { return w.p.Bytes() }

// Pack packs w [out][in] into 32-column bf16 k-pair panels, in memory
// outside the Go heap that Close releases.
func (c *CPU) Pack(w []uint16, out, in int) (Weight, error) {
	if len(w) != out*in || out < 0 || in < 0 {
		return nil, fmt.Errorf("backend: pack weight [%d %d]: have %d values", out, in, len(w))
	}
	n := kernels.PackedLen(kernels.BF16Pairs, out, in)
	mem, err := c.weights.alloc(2 * n)
	if err != nil {
		return nil, fmt.Errorf("backend: pack weight [%d %d]: %w", out, in, err)
	}
	cw := &cpuWeight{p: kernels.Packed{BF16: view[uint16](mem, n)[:0]}}
	if err := kernels.PackBF16(&cw.p, w, out, in, in); err != nil {
		return nil, err
	}
	return cw, nil
}

// PackDone tells the backend that no more weights follow for now: it
// returns the memory reserved past the last packed weight to the kernel.
func (c *CPU) PackDone() { c.weights.Trim() }

func (c *CPU) weight(w Weight) (*kernels.Packed, error) {
	cw, ok := w.(*cpuWeight)
	if !ok {
		return nil, fmt.Errorf("backend: weight %T was not packed by the CPU backend", w)
	}
	return &cw.p, nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// rowStride is the row stride, in elements of size bytes, for rows of n
// elements: n rounded up to a whole number of 64-byte lines, and to an odd
// number of lines, so that the 14 rows of a GEMM tile fall in different L1
// sets (a 4 KiB stride would put them all in one set).
func rowStride(n, size int) int {
	lines := (n*size + 63) / 64
	if lines%2 == 0 {
		lines++
	}
	return lines * 64 / size
}

// stage copies rows [r0, r1) of src — normalised by norm when it is not
// nil — into the worker's A buffer in the activation precision, with rows
// padded to an even length (zero pad), and returns the row stride.
func (c *CPU) stage(s *cpuScratch, src Mat, norm *Norm, r0, r1 int) int {
	kp := (src.Cols + 1) &^ 1
	row32 := func(r int) []float32 {
		if norm == nil {
			return src.Row(r)
		}
		s.row = grow(s.row, src.Cols)
		_ = c.isa.LayerNorm(s.row, src.Row(r), norm.Weight, norm.Bias, norm.Eps) // shapes checked by checkNorm
		return s.row
	}
	if c.act == BF16 {
		ld := rowStride(kp, 2)
		s.a16 = grow(s.a16, (r1-r0)*ld)
		for r := r0; r < r1; r++ {
			row := s.a16[(r-r0)*ld : (r-r0)*ld+kp]
			c.isa.ToBF16(row, row32(r))
			if kp != src.Cols {
				row[kp-1] = 0
			}
		}
		return ld
	}
	ld := rowStride(kp, 4)
	s.a32 = grow(s.a32, (r1-r0)*ld)
	for r := r0; r < r1; r++ {
		row := s.a32[(r-r0)*ld : (r-r0)*ld+kp]
		if norm == nil {
			copy(row, src.Row(r))
		} else {
			_ = c.isa.LayerNorm(row, src.Row(r), norm.Weight, norm.Bias, norm.Eps)
		}
		if kp != src.Cols {
			row[kp-1] = 0
		}
	}
	return ld
}

// matmul runs C = A·Bᵀ (+bias)(+C) on the staged A of worker s.
func (c *CPU) matmul(s *cpuScratch, dst []float32, ldc int, lda, m int, b *kernels.Packed, bias []float32, accum bool) error {
	if c.act == BF16 {
		return c.isa.MatMulBF16(dst, ldc, s.a16, lda, m, b, bias, accum, &s.gemm)
	}
	return c.isa.MatMulF32(dst, ldc, s.a32, lda, m, b, bias, accum, &s.gemm)
}

// taskRows is the row-block size of a parallel loop over n rows: about
// limit rows, a multiple of the register tile, and as many blocks as a
// multiple of the worker count, so that no worker is left with a lone block
// at the end.
func (c *CPU) taskRows(n, limit int) int {
	w := c.pool.Workers()
	tasks := (n + limit - 1) / limit
	tasks = (tasks + w - 1) / w * w
	rows := (n + tasks - 1) / tasks
	return max(c.tile, (rows+c.tile-1)/c.tile*c.tile)
}

// forRows runs f over blocks of at most limit rows in parallel (see
// taskRows) and returns the first error.
func (c *CPU) forRows(n, limit int, f func(s *cpuScratch, r0, r1 int) error) error {
	if n == 0 {
		return nil
	}
	rows := c.taskRows(n, limit)
	blocks := (n + rows - 1) / rows
	errs := make([]error, blocks)
	c.pool.For(blocks, func(w, i int) {
		r0 := i * rows
		errs[i] = f(&c.scratch[w], r0, min(n, r0+rows))
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkLinear(what string, dst, src Mat, out, in int, bias []float32) error {
	if err := src.Check(what + " input"); err != nil {
		return err
	}
	if err := dst.Check(what + " output"); err != nil {
		return err
	}
	switch {
	case src.Cols != in:
		return fmt.Errorf("%s: input has %d columns, weight wants %d", what, src.Cols, in)
	case dst.Cols != out || dst.Rows != src.Rows:
		return fmt.Errorf("%s: output is [%d %d], want [%d %d]", what, dst.Rows, dst.Cols, src.Rows, out)
	case bias != nil && len(bias) != out:
		return fmt.Errorf("%s: bias has %d values, want %d", what, len(bias), out)
	}
	return nil
}

// checkNorm checks that a LayerNorm has one weight and bias per column.
func checkNorm(what string, norm *Norm, cols int) error {
	if norm != nil && (len(norm.Weight) != cols || len(norm.Bias) != cols) {
		return fmt.Errorf("%s: layer norm has %d weights and %d biases, input has %d columns", what, len(norm.Weight), len(norm.Bias), cols)
	}
	return nil
}

// Linear computes dst (+)= x·Wᵀ + bias in parallel over row blocks; the
// optional LayerNorm of the input rows happens while staging them.
func (c *CPU) Linear(dst, src Mat, norm *Norm, w Weight, bias []float32, accumulate bool) error {
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
	return c.forRows(src.Rows, linearRows, func(s *cpuScratch, r0, r1 int) error {
		lda := c.stage(s, src, norm, r0, r1)
		return c.matmul(s, dst.Data[r0*dst.Stride:], dst.Stride, lda, r1-r0, b, bias, accumulate)
	})
}

// MLP computes dst += GELU(x·W1ᵀ + b1)·W2ᵀ + b2, one row block per task:
// the [rows][ffn] hidden block never leaves the worker's scratch.
func (c *CPU) MLP(dst, src Mat, norm *Norm, w1 Weight, b1 []float32, w2 Weight, b2 []float32) error {
	p1, err := c.weight(w1)
	if err != nil {
		return err
	}
	p2, err := c.weight(w2)
	if err != nil {
		return err
	}
	if p2.K != p1.N {
		return fmt.Errorf("mlp: fc1 gives %d features, fc2 takes %d", p1.N, p2.K)
	}
	if b1 != nil && len(b1) != p1.N {
		return fmt.Errorf("mlp: fc1 bias has %d values, want %d", len(b1), p1.N)
	}
	if err := checkLinear("mlp", dst, src, p2.N, p1.K, b2); err != nil {
		return err
	}
	if err := checkNorm("mlp", norm, src.Cols); err != nil {
		return err
	}
	ffn, ffnP := p1.N, (p1.N+1)&^1
	ldc := rowStride(ffn, 4)
	return c.forRows(src.Rows, mlpRows, func(s *cpuScratch, r0, r1 int) error {
		m := r1 - r0
		lda := c.stage(s, src, norm, r0, r1)
		s.c = grow(s.c, m*ldc)
		if err := c.matmul(s, s.c, ldc, lda, m, p1, b1, false); err != nil {
			return err
		}
		var ldh int
		if c.act == BF16 {
			ldh = rowStride(ffnP, 2)
			s.a16 = grow(s.a16, m*ldh)
			for r := range m {
				row := s.a16[r*ldh : r*ldh+ffnP]
				c.isa.GELUBF16(row, s.c[r*ldc:r*ldc+ffn])
				if ffnP != ffn {
					row[ffn] = 0
				}
			}
		} else {
			ldh = rowStride(ffnP, 4)
			s.a32 = grow(s.a32, m*ldh)
			for r := range m {
				row := s.a32[r*ldh : r*ldh+ffnP]
				c.isa.GELU(row, s.c[r*ldc:r*ldc+ffn])
				if ffnP != ffn {
					row[ffn] = 0
				}
			}
		}
		return c.matmul(s, dst.Data[r0*dst.Stride:], dst.Stride, ldh, m, p2, b2, true)
	})
}

// ScratchBytes is the memory the backend holds besides the packed weights:
// the attention workspaces not in use and the workers' scratch. Call it
// between operations (it reads the workers' buffers unsynchronised).
func (c *CPU) ScratchBytes() int {
	c.mu.Lock()
	n := 0
	for _, ws := range c.free {
		n += ws.Bytes()
	}
	c.mu.Unlock()
	for i := range c.scratch {
		s := &c.scratch[i]
		n += 2*(cap(s.a16)+cap(s.h16)+cap(s.tmp)) + 4*(cap(s.a32)+cap(s.row)+cap(s.c)+cap(s.h32)+cap(s.o)) + s.gemm.Bytes()
	}
	return n
}
