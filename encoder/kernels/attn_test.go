package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// TestSoftmaxBlock runs a whole online softmax, block by block, over rows
// whose maxima move up and down between blocks, accumulating O += P·V as
// flash attention does, and compares the normalised result, the running
// maxima and sums with float64 softmax·V. It also checks each block's
// probabilities against exp(s − m') and that nothing is written past the
// block.
func TestSoftmaxBlock(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, tc := range []struct {
		rows, no int
		blocks   []int
	}{
		{1, 16, []int{1}}, {3, 5, []int{17, 1, 33}}, {20, 16, []int{48, 33}}, {14, 64, []int{256, 256, 220}}, {14, 32, []int{15, 16, 100}},
		{2, 0, []int{64, 31}}, {5, 40, []int{512, 3}},
	} {
		total := 0
		for _, n := range tc.blocks {
			total += n
		}
		s := make([][]float32, len(tc.blocks)) // per block [rows][n], stride n+3
		for b, n := range tc.blocks {
			s[b] = randSlice(r, tc.rows*(n+3), 3)
			for i := range s[b] {
				s[b][i] += float32(b%2) * 5 // later blocks raise and lower the maximum
			}
			if n > 2 {
				s[b][1] = -300 // underflows to 0
			}
		}
		v := randSlice(r, total*max(tc.no, 1), 1) // [total][no]
		// float64 reference: softmax over all columns, then ·V.
		ref := make([]float64, tc.rows*tc.no)
		refL, refM := make([]float64, tc.rows), make([]float64, tc.rows)
		for row := range tc.rows {
			m := math.Inf(-1)
			for b, n := range tc.blocks {
				for j := range n {
					m = math.Max(m, float64(s[b][row*(n+3)+j]))
				}
			}
			col := 0
			for b, n := range tc.blocks {
				for j := range n {
					e := math.Exp(float64(s[b][row*(n+3)+j]) - m)
					refL[row] += e
					for k := range tc.no {
						ref[row*tc.no+k] += e * float64(v[col*tc.no+k])
					}
					col++
				}
			}
			refM[row] = m
		}
		for _, isa := range isas() {
			for _, bf := range []bool{false, true} {
				if bf && isa != Portable && isa != AVX512BF16 {
					continue
				}
				name := fmt.Sprintf("%s/bf16=%v/rows%d_no%d_%v", isa, bf, tc.rows, tc.no, tc.blocks)
				t.Run(name, func(t *testing.T) {
					testOnline(t, isa, bf, tc.rows, tc.no, tc.blocks, s, v, ref, refL, refM)
				})
			}
		}
	}
}

func testOnline(t *testing.T, isa ISA, bf bool, rows, no int, blocks []int, s [][]float32, v []float32, ref, refL, refM []float64) {
	ldo := no + 2
	o := make([]float32, rows*ldo)
	for i := range o {
		o[i] = 7 // garbage the first block's a = 0 must clear... scaled by 0
	}
	m, l := make([]float32, rows), make([]float32, rows)
	for i := range m {
		m[i] = float32(math.Inf(-1))
	}
	col := 0
	runMax := make([]float64, rows)
	for i := range runMax {
		runMax[i] = math.Inf(-1)
	}
	for b, n := range blocks {
		lds, ldp := n+3, n+5
		p32 := make([]float32, rows*ldp)
		p16 := make([]uint16, rows*ldp)
		for i := range p16 {
			p16[i], p32[i] = 0xffff, -1
		}
		var err error
		if bf {
			err = isa.SoftmaxBlockBF16(p16, ldp, s[b], lds, rows, n, m, l, o, ldo, no)
		} else {
			err = isa.SoftmaxBlockF32(p32, ldp, s[b], lds, rows, n, m, l, o, ldo, no)
		}
		if err != nil {
			t.Fatal(err)
		}
		for row := range rows {
			for j := range n {
				runMax[row] = math.Max(runMax[row], float64(s[b][row*lds+j]))
			}
			if float64(m[row]) != runMax[row] {
				t.Fatalf("block %d row %d: running max %g, want %g", b, row, m[row], runMax[row])
			}
			for j := range n {
				x := float64(s[b][row*lds+j]) - runMax[row]
				want := math.Exp(x)
				// The exponent s·log₂e − m'·log₂e is computed in float32 from a
				// rounded m'·log₂e (one FMA in assembly, a product and a sum in
				// Go): each rounding costs up to 2⁻²⁴ of its magnitude.
				tErr := (math.Abs(float64(s[b][row*lds+j])) + math.Abs(runMax[row]) + math.Abs(x)) * math.Log2E * 0x1p-24 * math.Ln2
				got, tol := float64(p32[row*ldp+j]), (2e-7+tErr)*want+1e-37
				if bf {
					got, tol = float64(bf16.ToFloat32(p16[row*ldp+j])), want*(1.0/256+3e-6+tErr)+1e-37
				}
				if math.Abs(got-want) > tol {
					t.Fatalf("block %d P[%d][%d] = %g, want %g", b, row, j, got, want)
				}
			}
			// Past the block: only the bf16 pad column when n is odd.
			end := n
			if bf && n%2 == 1 {
				if p16[row*ldp+n] != 0 {
					t.Fatalf("block %d row %d: pad column %#04x, want 0", b, row, p16[row*ldp+n])
				}
				end++
			}
			for j := end; j < ldp; j++ {
				if (bf && p16[row*ldp+j] != 0xffff) || (!bf && p32[row*ldp+j] != -1) {
					t.Fatalf("block %d row %d: wrote P column %d past n = %d", b, row, j, n)
				}
			}
		}
		// O += P·V over this block's columns.
		for row := range rows {
			for k := range no {
				var acc float32
				for j := range n {
					pv := p32[row*ldp+j]
					if bf {
						pv = bf16.ToFloat32(p16[row*ldp+j])
					}
					acc += pv * v[(col+j)*no+k]
				}
				o[row*ldo+k] += acc
			}
		}
		col += n
	}
	for row := range rows {
		if e := math.Abs(float64(l[row]) - refL[row]); e > 2e-6*refL[row] {
			t.Fatalf("row %d: sum %g, want %g", row, l[row], refL[row])
		}
		var scale float64
		for k := range no {
			scale = math.Max(scale, math.Abs(ref[row*no+k]/refL[row]))
		}
		for k := range no {
			got, want := float64(o[row*ldo+k])/float64(l[row]), ref[row*no+k]/refL[row]
			tol := 2e-5 * (scale + 1)
			if bf {
				tol = 1e-2 * (scale + 1)
			}
			if math.Abs(got-want) > tol {
				t.Fatalf("row %d: softmax·V[%d] = %g, want %g", row, k, got, want)
			}
		}
		for k := no; k < ldo; k++ {
			if o[row*ldo+k] != 7 {
				t.Fatalf("row %d: O column %d past no = %d changed", row, k, no)
			}
		}
	}
}

func TestSoftmaxBlockErrors(t *testing.T) {
	m, l := make([]float32, 2), make([]float32, 2)
	cases := []struct {
		name string
		err  error
	}{
		{"short scores", Portable.SoftmaxBlockF32(make([]float32, 8), 4, make([]float32, 7), 4, 2, 4, m, l, nil, 0, 0)},
		{"short p", Portable.SoftmaxBlockBF16(make([]uint16, 9), 5, make([]float32, 10), 5, 2, 5, m, l, nil, 0, 0)},
		{"short m", Portable.SoftmaxBlockF32(make([]float32, 12), 4, make([]float32, 12), 4, 3, 4, m, l, nil, 0, 0)},
		{"short o", Portable.SoftmaxBlockF32(make([]float32, 8), 4, make([]float32, 8), 4, 2, 4, m, l, make([]float32, 15), 8, 8)},
		{"bf16 on avx2", AVX2.SoftmaxBlockBF16(make([]uint16, 8), 4, make([]float32, 8), 4, 2, 4, m, l, nil, 0, 0)},
		{"scale rows", Portable.ScaleRows(make([]float32, 7), 4, make([]float32, 8), 4, 2, 4, []float32{1, 1})},
	}
	for _, tc := range cases {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestScaleRows(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for _, n := range rowLens {
		const rows = 5
		lds, ldd := n+1, n+3
		src := randSlice(r, rows*lds, 2)
		f := randSlice(r, rows, 1)
		for _, isa := range isas() {
			d32 := make([]float32, rows*ldd)
			d16 := make([]uint16, rows*ldd)
			if err := isa.ScaleRows(d32, ldd, src, lds, rows, n, f); err != nil {
				t.Fatal(err)
			}
			if isa == Portable || isa == AVX512BF16 {
				if err := isa.ScaleRowsBF16(d16, ldd, src, lds, rows, n, f); err != nil {
					t.Fatal(err)
				}
			}
			for row := range rows {
				for j := range ldd {
					want32, want16 := float32(0), uint16(0)
					if j < n {
						want32 = src[row*lds+j] * f[row]
						want16 = bf16.FromFloat32FTZ(want32)
					}
					if d32[row*ldd+j] != want32 {
						t.Fatalf("%s n%d: [%d][%d] = %g, want %g", isa, n, row, j, d32[row*ldd+j], want32)
					}
					if (isa == Portable || isa == AVX512BF16) && d16[row*ldd+j] != want16 {
						t.Fatalf("%s n%d: bf16 [%d][%d] = %#04x, want %#04x", isa, n, row, j, d16[row*ldd+j], want16)
					}
				}
			}
		}
	}
}

func TestAddBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for _, n := range rowLens {
		x := randSlice(r, n+1, 2)
		b := make([]uint16, n+1)
		for i := range b {
			b[i] = bf16.FromFloat32FTZ(float32(r.NormFloat64()))
		}
		for _, isa := range isas() {
			got := append([]float32(nil), x...)
			isa.AddBF16(got[:n], b)
			for i := range n {
				if want := x[i] + bf16.ToFloat32(b[i]); got[i] != want {
					t.Fatalf("%s n%d: [%d] = %g, want %g", isa, n, i, got[i], want)
				}
			}
			if got[n] != x[n] {
				t.Fatalf("%s n%d: wrote past n", isa, n)
			}
		}
	}
}

// TestExp2Poly checks the exp2 polynomials against math.Exp2 over many
// octaves, and the assembly against the portable twin through SoftmaxBlock.
func TestExp2Poly(t *testing.T) {
	for _, c := range []struct {
		coef []float32
		tol  float64
	}{{exp2BF16Coef[:], 3e-6}, {exp2F32Coef[:], 2e-7}} {
		for x := -125.0; x <= 10; x += 0.001953 {
			got, want := float64(exp2Poly(float32(x), c.coef)), math.Exp2(float64(float32(x)))
			if math.Abs(got-want) > c.tol*want {
				t.Fatalf("exp2(%g) = %g, want %g (degree %d)", x, got, want, len(c.coef)-1)
			}
		}
	}
	if exp2Poly(-1e30, exp2F32Coef[:]) != 0 || exp2Poly(-160, exp2F32Coef[:]) != 0 {
		t.Fatal("exp2 of very negative exponents is not 0")
	}
}

// TestRowMax: the AVX2 row maximum equals the portable one for every length
// and position of the maximum (vector body, odd 8-block, tail).
func TestRowMax(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, isa := range isas() {
		for n := 1; n <= 70; n++ {
			for _, at := range []int{0, n / 2, n - 1} {
				s := randSlice(r, n, 3)
				s[at] = 100
				if got := isa.rowMax(s); got != 100 {
					t.Fatalf("%s: rowMax of %d values, maximum at %d: %g", isa, n, at, got)
				}
				s[at] = -100
				if got, want := isa.rowMax(s), maxOf(s); got != want {
					t.Fatalf("%s: rowMax of %d values: %g, want %g", isa, n, got, want)
				}
			}
		}
	}
}
