package model

import (
	"math"

	"github.com/xdna-whisper/xdna-whisper/encoder/backend"
)

// stemRows is the most conv2 output rows one stem block computes: the
// block's conv1 output (2·rows+1 rows of d floats, 0.5 MB for whisper-base)
// is the stem's largest buffer.
const stemRows = 128

// workspace is the stem's scratch for one window: the time-major padded
// input and the conv1 output of one block of conv2 rows. The residual
// stream is the caller's output window; the attention workspace belongs to
// the backend.
type workspace struct {
	in []float32 // [2·rows+3][n_mels]
	h1 []float32 // [2·rows+1][d]
}

func (e *Encoder) workspace() *workspace {
	e.wsMu.Lock()
	if n := len(e.free); n > 0 {
		ws := e.free[n-1]
		e.free = e.free[:n-1]
		e.wsMu.Unlock()
		return ws
	}
	e.wsMu.Unlock()
	rows := e.stemBlock()
	return &workspace{
		in: make([]float32, (2*rows+3)*e.cfg.NumMelBins),
		h1: make([]float32, (2*rows+1)*e.cfg.DModel),
	}
}

// stemBlock splits the P conv2 rows into equal blocks of at most stemRows.
func (e *Encoder) stemBlock() int {
	p := e.cfg.MaxSourcePositions
	blocks := (p + stemRows - 1) / stemRows
	return (p + blocks - 1) / blocks
}

func (e *Encoder) release(ws *workspace) {
	e.wsMu.Lock()
	e.free = append(e.free, ws)
	e.wsMu.Unlock()
}

// rows runs f over blocks of rows in parallel on the encoder's workers.
func (e *Encoder) rows(n int, f func(r0, r1 int)) {
	const block = 64
	e.pool.For((n+block-1)/block, func(_, i int) {
		f(i*block, min(n, (i+1)*block))
	})
}

// window encodes one log-mel window mel [n_mels][frames] into x [P][d],
// which holds the residual stream until the final LayerNorm overwrites it
// with the hidden state.
func (e *Encoder) window(ws *workspace, mel []float32, frames int, out []float32) error {
	c := e.cfg
	p, d := c.MaxSourcePositions, c.DModel
	x := backend.Mat{Data: out, Rows: p, Cols: d, Stride: d}
	if err := e.stem(ws, mel, frames, x); err != nil {
		return err
	}
	scale := float32(1 / math.Sqrt(float64(c.HeadDim())))
	for i := range e.layers {
		l := &e.layers[i]
		// The block LayerNorms happen inside the backend, while it stages
		// the GEMM input rows.
		err := e.timed(OpAttention, func() error {
			return e.be.SelfAttention(x, &l.ln1, l.qkv, l.qkvB, l.out, l.outB, c.EncoderAttentionHeads, scale)
		})
		if err != nil {
			return err
		}
		if err := e.timed(OpMLP, func() error { return e.be.MLP(x, x, &l.ln2, l.fc1, l.fc1B, l.fc2, l.fc2B) }); err != nil {
			return err
		}
	}
	return e.layerNorm(x, e.lnW, e.lnB)
}

// layerNorm normalises x row by row in place (the final LayerNorm).
func (e *Encoder) layerNorm(x backend.Mat, w, b []float32) error {
	return e.timed(OpLayerNorm, func() error {
		var first error
		errs := make([]error, (x.Rows+63)/64)
		e.rows(x.Rows, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				if err := e.isa.LayerNorm(x.Row(r), x.Row(r), w, b, e.eps); err != nil {
					errs[r0/64] = err
				}
			}
		})
		for _, err := range errs {
			if err != nil && first == nil {
				first = err
			}
		}
		return first
	})
}

// stem runs conv1 + GELU, conv2 + GELU and adds the positional table,
// leaving x [P][d], one block of conv2 rows at a time: block [t0, t1)
// needs conv1 rows 2t0−1 … 2t1−1 (row −1 is conv2's zero padding), which
// read input frames 2t0−2 … 2t1 (frame −1 and 2P are conv1's padding).
func (e *Encoder) stem(ws *workspace, mel []float32, frames int, x backend.Mat) error {
	c := e.cfg
	p, d, nm := c.MaxSourcePositions, c.DModel, c.NumMelBins
	pad := padValue(mel)
	rows := e.stemBlock()
	for t0 := 0; t0 < p; t0 += rows {
		t1 := min(p, t0+rows)
		n1 := 2*(t1-t0) + 1 // conv1 rows of the block
		// in: time-major input rows k ↔ frame 2t0−2+k, k < n1+2.
		in := ws.in[:(n1+2)*nm]
		_ = e.timed(OpElementwise, func() error { // elementwise work cannot fail
			e.rows(n1+2, func(k0, k1 int) {
				for k := k0; k < k1; k++ {
					row, f := in[k*nm:(k+1)*nm], 2*t0-2+k
					switch {
					case f < 0 || f >= 2*p:
						clear(row)
					case f >= frames:
						for m := range row {
							row[m] = pad
						}
					default:
						for m := range row {
							row[m] = mel[m*frames+f]
						}
					}
				}
			})
			return nil
		})
		// conv1: h1 row k reads input rows k..k+2.
		h1 := ws.h1[:n1*d]
		k0 := 0
		if t0 == 0 {
			clear(h1[:d]) // conv1 row −1: conv2's padding
			k0 = 1
		}
		err := e.timed(OpConv, func() error {
			return e.be.Linear(backend.Mat{Data: h1[k0*d:], Rows: n1 - k0, Cols: d, Stride: d},
				backend.Mat{Data: in[k0*nm:], Rows: n1 - k0, Cols: 3 * nm, Stride: nm}, nil, e.conv1, e.conv1b, false)
		})
		if err != nil {
			return err
		}
		_ = e.timed(OpElementwise, func() error { // elementwise work cannot fail
			e.rows(n1-k0, func(r0, r1 int) { e.isa.GELU(h1[(k0+r0)*d:(k0+r1)*d], h1[(k0+r0)*d:(k0+r1)*d]) })
			return nil
		})
		// conv2 (stride 2): output row t0+t reads h1 rows 2t..2t+2.
		err = e.timed(OpConv, func() error {
			return e.be.Linear(backend.Mat{Data: x.Data[t0*d:], Rows: t1 - t0, Cols: d, Stride: d},
				backend.Mat{Data: h1, Rows: t1 - t0, Cols: 3 * d, Stride: 2 * d}, nil, e.conv2, e.conv2b, false)
		})
		if err != nil {
			return err
		}
		_ = e.timed(OpElementwise, func() error { // elementwise work cannot fail
			e.rows(t1-t0, func(r0, r1 int) {
				xs := x.Data[(t0+r0)*d : (t0+r1)*d]
				e.isa.GELU(xs, xs)
				e.isa.AddBF16(xs, e.pos[(t0+r0)*d:])
			})
			return nil
		})
	}
	return nil
}

// padValue is the normalised log-mel of digital silence in a window whose
// frames are mel: max(max(mel) − 2, −1.5) (see Encode).
func padValue(mel []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range mel {
		m = max(m, v)
	}
	return max(m-2, -1.5)
}
