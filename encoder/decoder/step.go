package decoder

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/xdna-whisper/xdna-whisper/encoder/backend"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// Input is one sequence's part of a Step: the tokens to append (one for a
// decode step, a whole prompt for a prefill).
type Input struct {
	Seq    *Sequence
	Tokens []int
	// AllLogits asks for the logits of every token of Tokens; by default
	// only the last token's (the next-token distribution) are computed.
	AllLogits bool
	// AlignHeads lists cross-attention heads (the alignment heads of
	// generation_config.json, for word timestamps) whose attention weights
	// over the window are written into Weights: Weights[j] receives
	// softmax(q·kᵀ/√(head dim)) of head AlignHeads[j] for every token of
	// Tokens, [len(Tokens)][window positions] row-major.
	AlignHeads []Head
	Weights    [][]float32
}

// Head names one attention head: layer and head index, as the
// alignment_heads pairs of generation_config.json.
type Head struct{ Layer, Head int }

// Batch is the working memory of Steps: the stacked rows of the sequences
// being advanced. A Batch is used by one goroutine at a time; several
// Batches may step concurrently on one Decoder (they share its workers).
type Batch struct {
	d                  *Decoder
	x, qkv, q, o, ff   []float32
	y, logits          []float32
	tokens, at, starts []int
	outRows            []int
	groups             []group
	rowIdx, members    []int
}

// NewBatch returns an empty Batch; its buffers grow to the largest step.
func (d *Decoder) NewBatch() *Batch { return &Batch{d: d} }

// Bytes is the memory the batch's buffers hold.
func (b *Batch) Bytes() int {
	return 4 * (cap(b.x) + cap(b.qkv) + cap(b.q) + cap(b.o) + cap(b.ff) + cap(b.y) + cap(b.logits))
}

// Step appends the tokens of each input to its sequence and returns the
// logits: for input i, out[i] is [rows][vocab] row-major, rows being 1, or
// len(Tokens) with AllLogits. The slices are valid until the next Step of
// b. Inputs are checked first (known sequence, each once, tokens in the
// vocabulary, room in the text context); on any error no sequence
// advances, and a sequence can be stepped again from where it was.
func (b *Batch) Step(ctx context.Context, in []Input) ([][]float32, error) {
	d := b.d
	if err := d.acquire(); err != nil {
		return nil, err
	}
	defer d.mu.RUnlock()
	if err := b.prepare(in); err != nil {
		return nil, err
	}
	dm, m := d.cfg.DModel, len(b.tokens)
	x := backend.Mat{Data: b.x, Rows: m, Cols: dm, Stride: dm}
	if err := d.cpu.Rows(x, d.embed, b.tokens); err != nil {
		return nil, err
	}
	for r, p := range b.at {
		row, pos := x.Row(r), d.pos[p*dm:(p+1)*dm]
		for k := range row {
			row[k] += pos[k]
		}
	}
	for i := range d.layers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("decode step: %w", err)
		}
		if err := b.layer(i, in, x); err != nil {
			return nil, fmt.Errorf("decode step, layer %d: %w", i, err)
		}
	}
	out, err := b.project(in, x)
	if err != nil {
		return nil, fmt.Errorf("decode step, logits: %w", err)
	}
	for _, v := range in {
		v.Seq.n += len(v.Tokens)
	}
	return out, nil
}

// prepare checks the inputs and lays out the step's rows: tokens, their
// positions, each input's first row and the rows whose logits are wanted.
func (b *Batch) prepare(in []Input) error {
	d := b.d
	if len(in) == 0 {
		return fmt.Errorf("decode step: no inputs")
	}
	b.tokens, b.at, b.starts, b.outRows = b.tokens[:0], b.at[:0], b.starts[:0], b.outRows[:0]
	seen := make(map[*Sequence]int, len(in))
	for i, v := range in {
		switch {
		case v.Seq == nil || v.Seq.d != d:
			return fmt.Errorf("decode step: input %d: sequence of another decoder (or none)", i)
		case len(v.Tokens) == 0:
			return fmt.Errorf("decode step: input %d has no tokens", i)
		case v.Seq.n+len(v.Tokens) > d.cfg.MaxTargetPositions:
			return fmt.Errorf("decode step: input %d: %d tokens after %d exceed the text context of %d", i, len(v.Tokens), v.Seq.n, d.cfg.MaxTargetPositions)
		}
		if err := d.checkAlign(v); err != nil {
			return fmt.Errorf("decode step: input %d: %w", i, err)
		}
		if j, dup := seen[v.Seq]; dup {
			return fmt.Errorf("decode step: inputs %d and %d are the same sequence", j, i)
		}
		seen[v.Seq] = i
		b.starts = append(b.starts, len(b.tokens))
		for j, t := range v.Tokens {
			if t < 0 || t >= d.cfg.Vocab {
				return fmt.Errorf("decode step: input %d token %d is %d, outside the vocabulary [0, %d)", i, j, t, d.cfg.Vocab)
			}
			if v.AllLogits || j == len(v.Tokens)-1 {
				b.outRows = append(b.outRows, len(b.tokens))
			}
			b.tokens = append(b.tokens, t)
			b.at = append(b.at, v.Seq.n+j)
		}
	}
	m, dm := len(b.tokens), d.cfg.DModel
	b.x = grow(b.x, m*dm)
	b.qkv = grow(b.qkv, m*3*dm)
	b.q = grow(b.q, m*dm)
	b.o = grow(b.o, m*dm)
	b.ff = grow(b.ff, m*d.cfg.FFN)
	b.y = grow(b.y, len(b.outRows)*dm)
	b.logits = grow(b.logits, len(b.outRows)*d.cfg.Vocab)
	for _, v := range in {
		for i := range v.Seq.layers {
			v.Seq.layers[i].grow(v.Seq.n+len(v.Tokens), SelfBlock, d.cfg.HeadDim())
		}
	}
	return nil
}

// layer runs block i on the step's rows x.
func (b *Batch) layer(i int, in []Input, x backend.Mat) error {
	d, y := b.d, &b.d.layers[i]
	dm, m := d.cfg.DModel, x.Rows
	mat := func(buf []float32, cols int) backend.Mat {
		return backend.Mat{Data: buf, Rows: m, Cols: cols, Stride: cols}
	}
	qkv, q, o, ff := mat(b.qkv, 3*dm), mat(b.q, dm), mat(b.o, dm), mat(b.ff, d.cfg.FFN)
	// self-attention: project, append k and v to the caches, attend
	if err := d.cpu.LinearCols(qkv, x, &y.ln1, y.qkv, y.qkvB, false); err != nil {
		return err
	}
	if err := b.attend(in, i, qkv, 3*dm, true); err != nil {
		return err
	}
	if err := d.cpu.LinearCols(x, o, nil, y.out, y.outB, true); err != nil {
		return err
	}
	// cross-attention over each sequence's window
	if err := d.cpu.LinearCols(q, x, &y.ln2, y.cq, y.cqB, false); err != nil {
		return err
	}
	if err := b.attend(in, i, q, dm, false); err != nil {
		return err
	}
	if err := d.cpu.LinearCols(x, o, nil, y.cout, y.coutB, true); err != nil {
		return err
	}
	// MLP
	if err := d.cpu.LinearCols(ff, x, &y.ln3, y.fc1, y.fc1B, false); err != nil {
		return err
	}
	d.cpu.Pool().For(m, func(_, r int) { d.isa.GELU(ff.Row(r), ff.Row(r)) })
	return d.cpu.LinearCols(x, ff, nil, y.fc2, y.fc2B, true)
}

// project computes the logits of the wanted rows: LN(x)·embed_tokensᵀ.
func (b *Batch) project(in []Input, x backend.Mat) ([][]float32, error) {
	d := b.d
	dm, v, r := d.cfg.DModel, d.cfg.Vocab, len(b.outRows)
	for j, row := range b.outRows {
		copy(b.y[j*dm:(j+1)*dm], x.Row(row))
	}
	err := d.cpu.LinearCols(backend.Mat{Data: b.logits, Rows: r, Cols: v, Stride: v},
		backend.Mat{Data: b.y, Rows: r, Cols: dm, Stride: dm}, &d.ln, d.embed, nil, false)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(in))
	at := 0
	for i, inp := range in {
		n := 1
		if inp.AllLogits {
			n = len(inp.Tokens)
		}
		out[i] = b.logits[at*v : (at+n)*v : (at+n)*v]
		at += n
	}
	return out, nil
}

// attend runs the attention of layer i, writing each head's output into
// b.o. self: the queries are the first d columns of src (stride ld), keys
// and values the next 2d, appended first to each sequence's cache; one
// task per (input, head). cross: src holds the queries; the rows of all
// inputs over the same window attend together (one GEMM row each), one
// task per (window, head).
func (b *Batch) attend(in []Input, i int, src backend.Mat, ld int, self bool) error {
	d := b.d
	nh, hd := d.cfg.Heads, d.cfg.HeadDim()
	dm := d.cfg.DModel
	b.group(in, self)
	errs := make([]error, len(b.groups)*nh)
	d.cpu.Pool().For(len(b.groups)*nh, func(w, t int) {
		g, h := &b.groups[t/nh], t%nh
		s := &d.scratch[w]
		rows := b.rowIdx[g.r0:g.r1]
		q, o := src.Data[h*hd:], b.o[h*hd:]
		if !self {
			kv := &g.cross.layers[i]
			if errs[t] = d.head(s, kv, h, CrossBlock, g.cross.n, false, 0, rows, q, ld, o, dm); errs[t] != nil {
				return
			}
			off := 0
			for _, k := range b.members[g.m0:g.m1] {
				v := in[k]
				for j, a := range v.AlignHeads {
					if a.Layer == i && a.Head == h {
						if errs[t] = d.weights(s, kv, h, g.cross.n, off, len(v.Tokens), v.Weights[j]); errs[t] != nil {
							return
						}
					}
				}
				off += len(v.Tokens)
			}
			return
		}
		v := in[b.members[g.m0]]
		kv, n0 := &v.Seq.layers[i], v.Seq.n
		s.tmp = grow(s.tmp, 2*max(hd, 1))
		if errs[t] = kv.put(d.isa, h, SelfBlock, hd, n0, len(rows), src.Data[rows[0]*ld:], ld, dm, 2*dm, s.tmp); errs[t] != nil {
			return
		}
		errs[t] = d.head(s, kv, h, SelfBlock, n0+len(rows), true, n0, rows, q, ld, o, dm)
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// group is a set of inputs attending together: their rows
// b.rowIdx[r0:r1] and input indices b.members[m0:m1].
type group struct {
	cross          *Cross
	r0, r1, m0, m1 int
}

// group lays out the attention tasks: one group per input (self), or per
// window, its inputs' rows in input order (cross).
func (b *Batch) group(in []Input, self bool) {
	b.groups, b.rowIdx, b.members = b.groups[:0], b.rowIdx[:0], b.members[:0]
	for k, v := range in {
		if !self && slices.ContainsFunc(b.groups, func(g group) bool { return g.cross == v.Seq.cross }) {
			continue
		}
		g := group{cross: v.Seq.cross, r0: len(b.rowIdx), m0: len(b.members)}
		for k2 := k; k2 < len(in); k2++ {
			if k2 != k && (self || in[k2].Seq.cross != g.cross) {
				continue
			}
			b.members = append(b.members, k2)
			for r := range in[k2].Tokens {
				b.rowIdx = append(b.rowIdx, b.starts[k2]+r)
			}
			if self {
				break
			}
		}
		g.r1, g.m1 = len(b.rowIdx), len(b.members)
		b.groups = append(b.groups, g)
	}
}

// maskScore stands for −∞ in a causal mask: its exponential is 0 in every
// kernel (they clamp exponents far below the float32 range).
const maskScore = -1e30

// head computes softmax(q·kᵀ·scale)·v of head h for the query rows idx
// (row r at q[idx[r]·ldq:], its output at o[idx[r]·ldo:]) over the first
// keys keys of kv, block by block with an online softmax. causal: query
// row r is position n0+r and sees keys ≤ n0+r.
func (d *Decoder) head(s *scratch, kv *heads, h, block, keys int, causal bool, n0 int, idx []int, q []float32, ldq int, o []float32, ldo int) error {
	hd, rows := d.cfg.HeadDim(), len(idx)
	kp := (hd + 1) &^ 1
	ldp := (block + 1) &^ 1
	s.q = grow(s.q, rows*kp)
	s.s = grow(s.s, rows*block)
	s.p = grow(s.p, rows*ldp)
	vec := rows == 1 // one query row: matrix-vector products, not a padded GEMM tile
	s.o = grow(s.o, rows*hd)
	s.m, s.l = grow(s.m, rows), grow(s.l, rows)
	clear(s.o)
	sc := d.scale()
	for r := range rows {
		d.isa.Scale(s.q[r*kp:r*kp+hd], q[idx[r]*ldq:idx[r]*ldq+hd], sc)
		if kp != hd {
			s.q[r*kp+hd] = 0
		}
		s.m[r], s.l[r] = float32(math.Inf(-1)), 0
	}
	for bi := 0; bi*block < keys; bi++ {
		j0 := bi * block
		nb := min(block, keys-j0)
		kb := &kv.k[h][bi]
		key := kernels.Packed{Format: kb.Format, N: nb, K: kb.K, KP: kb.KP, BF16: kb.BF16}
		var err error
		if vec {
			err = d.isa.MatVecF32(s.s[:nb], s.q, &key, nil, false, &s.gemm)
		} else {
			err = d.isa.MatMulF32(s.s, block, s.q, kp, rows, &key, nil, false, &s.gemm)
		}
		if err != nil {
			return err
		}
		if causal {
			for r := range rows {
				for c := max(0, n0+r+1-j0); c < nb; c++ {
					s.s[r*block+c] = maskScore
				}
			}
		}
		if err := d.isa.SoftmaxBlockF32(s.p, ldp, s.s, block, rows, nb, s.m, s.l, s.o, hd, hd); err != nil {
			return err
		}
		vb := &kv.v[h][bi]
		for r := range rows {
			clear(s.p[r*ldp+nb : r*ldp+vb.KP])
		}
		if vec {
			err = d.isa.MatVecF32(s.o[:hd], s.p[:vb.KP], vb, nil, true, &s.gemm)
		} else {
			err = d.isa.MatMulF32(s.o, hd, s.p, ldp, rows, vb, nil, true, &s.gemm)
		}
		if err != nil {
			return err
		}
	}
	for r := range rows {
		inv := 1 / s.l[r]
		orow, acc := o[idx[r]*ldo:idx[r]*ldo+hd], s.o[r*hd:(r+1)*hd]
		for k, v := range acc {
			orow[k] = v * inv
		}
	}
	return nil
}

// weights writes the attention weights of rows [r0, r0+rows) of those
// head just computed (their scaled queries, running maxima and sums are
// still in s) into w [rows][keys]: exp(s − m)/l, recomputing the scores
// block by block.
func (d *Decoder) weights(s *scratch, kv *heads, h, keys, r0, rows int, w []float32) error {
	kp := (d.cfg.HeadDim() + 1) &^ 1
	for bi := 0; bi*CrossBlock < keys; bi++ {
		j0 := bi * CrossBlock
		nb := min(CrossBlock, keys-j0)
		kb := &kv.k[h][bi]
		key := kernels.Packed{Format: kb.Format, N: nb, K: kb.K, KP: kb.KP, BF16: kb.BF16}
		if err := d.isa.MatMulF32(s.s, CrossBlock, s.q[r0*kp:], kp, rows, &key, nil, false, &s.gemm); err != nil {
			return err
		}
		for r := range rows {
			m, inv := float64(s.m[r0+r]), 1/float64(s.l[r0+r])
			for c, v := range s.s[r*CrossBlock : r*CrossBlock+nb] {
				w[r*keys+j0+c] = float32(math.Exp(float64(v)-m) * inv)
			}
		}
	}
	return nil
}

// checkAlign checks an input's alignment heads and their buffers.
func (d *Decoder) checkAlign(v Input) error {
	if len(v.Weights) != len(v.AlignHeads) {
		return fmt.Errorf("%d alignment heads with %d weight buffers", len(v.AlignHeads), len(v.Weights))
	}
	for j, a := range v.AlignHeads {
		if a.Layer < 0 || a.Layer >= d.cfg.Layers || a.Head < 0 || a.Head >= d.cfg.Heads {
			return fmt.Errorf("alignment head %d is (%d, %d), the model has %d layers of %d heads", j, a.Layer, a.Head, d.cfg.Layers, d.cfg.Heads)
		}
		if want := len(v.Tokens) * v.Seq.cross.n; len(v.Weights[j]) != want {
			return fmt.Errorf("alignment head %d: weights buffer of %d values, %d tokens × %d positions need %d", j, len(v.Weights[j]), len(v.Tokens), v.Seq.cross.n, want)
		}
	}
	return nil
}

// scratch is one worker's attention memory; it grows to the largest step.
type scratch struct {
	gemm       kernels.Scratch
	q, s, p, o []float32
	m, l       []float32
	tmp        []uint16
}
