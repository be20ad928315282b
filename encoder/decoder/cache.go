package decoder

import (
	"context"
	"fmt"
	"math"

	"github.com/xdna-whisper/xdna-whisper/encoder/backend"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// Key/value block sizes. Each head's keys and values are held in blocks of
// keys: a key block is a packed [keys][head dim] GEMM operand (scores =
// q·kᵀ), a value block a packed [head dim][keys] one (output = p·v), so the
// attention is two GEMMs per block with an online softmax between them.
const (
	// SelfBlock is the growth step of a sequence's self-attention cache.
	SelfBlock = 64
	// CrossBlock is the block of encoder positions of a window's
	// cross-attention keys and values.
	CrossBlock = 256
)

// kvLen is the bf16 values of one key block and one value block of keys
// keys and head dimension hd.
func kvLen(keys, hd int) int {
	return kernels.PackedLen(kernels.BF16Pairs, keys, hd) + kernels.PackedLen(kernels.BF16Pairs, hd, keys)
}

// heads is one layer's key/value blocks: k[h][b], v[h][b] for head h and
// block b.
type heads struct {
	k, v [][]kernels.Packed
}

func newBlock(p *kernels.Packed, n, k int) {
	p.BF16 = make([]uint16, kernels.PackedLen(kernels.BF16Pairs, n, k))
	p.Resize(kernels.BF16Pairs, n, k)
}

// grow adds blocks of size keys to every head until n keys fit.
func (hs *heads) grow(n, block, hd int) {
	for h := range hs.k {
		for len(hs.k[h])*block < n {
			var k, v kernels.Packed
			newBlock(&k, block, hd)
			newBlock(&v, hd, block)
			hs.k[h] = append(hs.k[h], k)
			hs.v[h] = append(hs.v[h], v)
		}
	}
}

// put writes keys and values of positions [j0, j0+rows) for head h:
// key i at src[i·ld+kOff+h·hd:], value at src[i·ld+vOff+h·hd:].
func (hs *heads) put(isa kernels.ISA, h, block, hd, j0, rows int, src []float32, ld, kOff, vOff int, tmp []uint16) error {
	for i := 0; i < rows; {
		j := j0 + i
		b, off := j/block, j%block
		cnt := min(rows-i, block-off)
		row := src[i*ld:]
		if err := isa.PutRowsBF16(&hs.k[h][b], off, row[kOff+h*hd:], cnt, ld, tmp); err != nil {
			return err
		}
		if err := isa.PutColsBF16(&hs.v[h][b], off, row[vOff+h*hd:], cnt, ld, tmp); err != nil {
			return err
		}
		i += cnt
	}
	return nil
}

func (hs *heads) bytes() int {
	n := 0
	for h := range hs.k {
		for b := range hs.k[h] {
			n += hs.k[h][b].Bytes() + hs.v[h][b].Bytes()
		}
	}
	return n
}

func newHeads(n int) heads {
	return heads{k: make([][]kernels.Packed, n), v: make([][]kernels.Packed, n)}
}

// Cross is one window's cross-attention keys and values, computed once
// from the encoder output and shared by every Sequence decoding that window
// (the beams of a beam search, the temperature fallbacks of a window).
// It is read-only after NewCross and safe for concurrent use.
type Cross struct {
	d      *Decoder
	n      int
	layers []heads
}

// Positions is the number of encoder positions (keys) of the window.
func (c *Cross) Positions() int { return c.n }

// Bytes is the memory the window's keys and values hold.
func (c *Cross) Bytes() int {
	n := 0
	for i := range c.layers {
		n += c.layers[i].bytes()
	}
	return n
}

// NewCross computes every layer's cross-attention keys and values of the
// encoder output hidden ([positions][d_model], row-major: one window of the
// encoder's last hidden state). positions may be fewer than
// max_source_positions.
func (d *Decoder) NewCross(ctx context.Context, hidden []float32, positions int) (*Cross, error) {
	dm := d.cfg.DModel
	switch {
	case positions < 1 || positions > d.cfg.MaxSourcePositions:
		return nil, fmt.Errorf("cross attention: %d encoder positions, the model takes 1 to %d", positions, d.cfg.MaxSourcePositions)
	case len(hidden) != positions*dm:
		return nil, fmt.Errorf("cross attention: encoder output holds %d values, [%d %d] needs %d", len(hidden), positions, dm, positions*dm)
	}
	for i, v := range hidden {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("cross attention: encoder output [%d][%d] is %v: input must be finite", i/dm, i%dm, v)
		}
	}
	if err := d.acquire(); err != nil {
		return nil, err
	}
	defer d.mu.RUnlock()
	c := &Cross{d: d, n: positions, layers: make([]heads, d.cfg.Layers)}
	hd, nh := d.cfg.HeadDim(), d.cfg.Heads
	kv := make([]float32, positions*2*dm)
	src := backend.Mat{Data: hidden, Rows: positions, Cols: dm, Stride: dm}
	for i := range c.layers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cross attention: %w", err)
		}
		y := &d.layers[i]
		if err := d.cpu.Linear(backend.Mat{Data: kv, Rows: positions, Cols: 2 * dm, Stride: 2 * dm}, src, nil, y.ckv, y.ckvB, false); err != nil {
			return nil, fmt.Errorf("cross attention keys/values of layer %d: %w", i, err)
		}
		hs := newHeads(nh)
		for h := range nh {
			for j0 := 0; j0 < positions; j0 += CrossBlock {
				nb := min(CrossBlock, positions-j0)
				var k, v kernels.Packed
				newBlock(&k, nb, hd)
				newBlock(&v, hd, nb)
				hs.k[h] = append(hs.k[h], k)
				hs.v[h] = append(hs.v[h], v)
			}
		}
		errs := make([]error, nh)
		d.cpu.Pool().For(nh, func(w, h int) {
			s := &d.scratch[w]
			s.tmp = grow(s.tmp, 2*max(hd, 1))
			errs[h] = hs.put(d.isa, h, CrossBlock, hd, 0, positions, kv, 2*dm, 0, dm, s.tmp)
		})
		for _, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("cross attention keys/values of layer %d: %w", i, err)
			}
		}
		c.layers[i] = hs
	}
	return c, nil
}

// Sequence is one token sequence being decoded over a window: its position
// and self-attention cache (grown by SelfBlock positions, up to
// max_target_positions). A Sequence is advanced by one Step at a time; it
// must not be in two Steps at once.
type Sequence struct {
	d      *Decoder
	cross  *Cross
	n      int
	layers []heads
}

// NewSequence starts an empty sequence decoding the window c.
func (d *Decoder) NewSequence(c *Cross) (*Sequence, error) {
	if c == nil || c.d != d {
		return nil, fmt.Errorf("decoder: sequence over a window of another decoder (or none)")
	}
	s := &Sequence{d: d, cross: c, layers: make([]heads, d.cfg.Layers)}
	for i := range s.layers {
		s.layers[i] = newHeads(d.cfg.Heads)
	}
	return s, nil
}

// Len is the number of tokens the sequence holds.
func (s *Sequence) Len() int { return s.n }

// Cross is the window the sequence decodes.
func (s *Sequence) Cross() *Cross { return s.cross }

// Bytes is the memory of the sequence's self-attention cache.
func (s *Sequence) Bytes() int {
	n := 0
	for i := range s.layers {
		n += s.layers[i].bytes()
	}
	return n
}

// Clone returns an independent copy of the sequence (same window, same
// tokens so far): a beam that branches.
func (s *Sequence) Clone() *Sequence {
	c := &Sequence{d: s.d, cross: s.cross, n: s.n, layers: make([]heads, len(s.layers))}
	for i, hs := range s.layers {
		ch := newHeads(len(hs.k))
		for h := range hs.k {
			for b := range hs.k[h] {
				k, v := hs.k[h][b], hs.v[h][b]
				k.BF16, v.BF16 = append([]uint16(nil), k.BF16...), append([]uint16(nil), v.BF16...)
				ch.k[h] = append(ch.k[h], k)
				ch.v[h] = append(ch.v[h], v)
			}
		}
		c.layers[i] = ch
	}
	return c
}

// Truncate drops the tokens after the first n (n ≤ Len): the sequence
// continues from position n, e.g. to re-decode with a different token.
func (s *Sequence) Truncate(n int) error {
	if n < 0 || n > s.n {
		return fmt.Errorf("decoder: truncate a sequence of %d tokens to %d", s.n, n)
	}
	s.n = n
	return nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
