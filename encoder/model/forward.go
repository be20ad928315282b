package model

import (
	"math"

	"github.com/xdna-whisper/xdna-whisper/encoder/backend"
)

// workspace holds the activations of one window. The stem's buffers alias
// the block buffers they are no longer needed by.
type workspace struct {
	x   []float32 // [P][d] residual stream
	qkv []float32 // [P][3d]; the stem uses it for conv1's output [2P+2][d]
	a   []float32 // [P][d] attention output; the stem uses it for the input [2P+2][n_mels]
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
	p, d, nm := e.cfg.MaxSourcePositions, e.cfg.DModel, e.cfg.NumMelBins
	return &workspace{
		x:   make([]float32, p*d),
		qkv: make([]float32, max(3*p*d, (2*p+2)*d)),
		a:   make([]float32, max(p*d, (2*p+2)*nm)),
	}
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

// window encodes one log-mel window mel [n_mels][frames] into out [P][d].
func (e *Encoder) window(ws *workspace, mel []float32, frames int, out []float32) error {
	c := e.cfg
	p, d := c.MaxSourcePositions, c.DModel
	if err := e.stem(ws, mel, frames); err != nil {
		return err
	}
	x := backend.Mat{Data: ws.x, Rows: p, Cols: d, Stride: d}
	qkv := backend.Mat{Data: ws.qkv, Rows: p, Cols: 3 * d, Stride: 3 * d}
	a := backend.Mat{Data: ws.a[:p*d], Rows: p, Cols: d, Stride: d}
	scale := float32(1 / math.Sqrt(float64(c.HeadDim())))
	for i := range e.layers {
		l := &e.layers[i]
		// The block LayerNorms happen inside the backend, while it stages
		// the GEMM input rows.
		if err := e.timed(OpQKV, func() error { return e.be.Linear(qkv, x, &l.ln1, l.qkv, l.qkvB, false) }); err != nil {
			return err
		}
		if err := e.timed(OpAttention, func() error { return e.be.Attention(a, qkv, c.EncoderAttentionHeads, scale) }); err != nil {
			return err
		}
		if err := e.timed(OpOutProj, func() error { return e.be.Linear(x, a, nil, l.out, l.outB, true) }); err != nil {
			return err
		}
		if err := e.timed(OpMLP, func() error { return e.be.MLP(x, x, &l.ln2, l.fc1, l.fc1B, l.fc2, l.fc2B) }); err != nil {
			return err
		}
	}
	return e.layerNorm(backend.Mat{Data: out, Rows: p, Cols: d, Stride: d}, x, e.lnW, e.lnB)
}

// layerNorm writes LN(src) row by row into dst (the final LayerNorm).
func (e *Encoder) layerNorm(dst, src backend.Mat, w, b []float32) error {
	return e.timed(OpLayerNorm, func() error {
		var first error
		errs := make([]error, src.Rows)
		e.rows(src.Rows, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				errs[r] = e.isa.LayerNorm(dst.Row(r), src.Row(r), w, b, e.eps)
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
// leaving x [P][d] in ws.x.
func (e *Encoder) stem(ws *workspace, mel []float32, frames int) error {
	c := e.cfg
	p, d, nm := c.MaxSourcePositions, c.DModel, c.NumMelBins
	n := 2 * p // input frames after padding
	// in: time-major [n+2][nm] with a zero row on each side (conv padding).
	in := ws.a[:(n+2)*nm]
	err := e.timed(OpElementwise, func() error {
		pad := padValue(mel)
		clear(in[:nm])
		clear(in[(n+1)*nm:])
		e.rows(n, func(r0, r1 int) {
			for t := r0; t < r1; t++ {
				row := in[(t+1)*nm : (t+2)*nm]
				if t >= frames {
					for m := range row {
						row[m] = pad
					}
					continue
				}
				for m := range row {
					row[m] = mel[m*frames+t]
				}
			}
		})
		return nil
	})
	if err != nil {
		return err
	}
	// conv1: output row t reads input rows t..t+2 of the padded signal.
	h1 := ws.qkv[:(n+2)*d]
	clear(h1[:d])
	clear(h1[(n+1)*d:])
	err = e.timed(OpConv, func() error {
		return e.be.Linear(backend.Mat{Data: h1[d:], Rows: n, Cols: d, Stride: d},
			backend.Mat{Data: in, Rows: n, Cols: 3 * nm, Stride: nm}, nil, e.conv1, e.conv1b, false)
	})
	if err != nil {
		return err
	}
	e.timed(OpElementwise, func() error {
		e.rows(n, func(r0, r1 int) { e.isa.GELU(h1[(r0+1)*d:(r1+1)*d], h1[(r0+1)*d:(r1+1)*d]) })
		return nil
	})
	// conv2 (stride 2): output row t reads padded rows 2t..2t+2.
	err = e.timed(OpConv, func() error {
		return e.be.Linear(backend.Mat{Data: ws.x, Rows: p, Cols: d, Stride: d},
			backend.Mat{Data: h1, Rows: p, Cols: 3 * d, Stride: 2 * d}, nil, e.conv2, e.conv2b, false)
	})
	if err != nil {
		return err
	}
	return e.timed(OpElementwise, func() error {
		e.rows(p, func(r0, r1 int) {
			x := ws.x[r0*d : r1*d]
			e.isa.GELU(x, x)
			for i, v := range e.pos[r0*d : r1*d] {
				x[i] += v
			}
		})
		return nil
	})
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
