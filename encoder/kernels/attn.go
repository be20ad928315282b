package kernels

import (
	"fmt"
	"math"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// Flash-attention row operations: one key block of an online softmax, the
// final normalisation of the output rows, and the bf16 add of the
// positional table. Like the other row operations each has an AVX-512 path
// (bf16 outputs need AVX512BF16), an AVX2 path for the float32 forms and a
// portable twin computing the same formulas.

// Coefficients of the exp2 polynomials on r ∈ [−½, ½]: near-minimax fits of
// 2^r in relative error, degree 4 for bf16 outputs (2.7e−6, a thousandth of a
// bf16 ulp) and degree 6 for float32 outputs (1e−7 evaluated in float32).
var (
	exp2BF16Coef = [...]float32{0.00957010128, 0.0559178591, 0.240247443, 0.693121791, 0.999999285}
	exp2F32Coef  = [...]float32{0.000153458182, 0.00133999309, 0.00961848907, 0.0555032864, 0.240226462, 0.693147182, 1}
)

// exp2Poly is the portable twin of the assembly exp2: n = round(t),
// r = t − n, 2^r by Horner's rule on coef (highest degree first), scaled by
// 2ⁿ as VSCALEFPS does (underflowing to subnormals or zero). t must not be
// NaN or +Inf; t = −Inf is not allowed either (callers clamp or never pass it).
func exp2Poly(t float32, coef []float32) float32 {
	n := float32(math.RoundToEven(float64(t)))
	r := t - n
	p := coef[0]
	for _, c := range coef[1:] {
		p = p*r + c
	}
	if n < -300 {
		return 0
	}
	if n > 300 {
		return float32(math.Inf(1))
	}
	return float32(math.Ldexp(float64(p), int(n)))
}

const log2e = 1.4426950408889634

// alphaMin clamps the exponent of the rescaling factor exp(m_old − m_new):
// when a row starts (m_old = −Inf) the factor is 2⁻²⁰⁰, which is 0 in float32.
const alphaMin = -200

// SoftmaxBlockBF16 advances an online softmax by one block of n columns of
// rows rows (the inner step of a flash attention). For each row r, with
// s = S[r·lds : r·lds+n]:
//
//	m' = max(m[r], max(s)),   a = exp(m[r] − m')
//	P[r·ldp+j] = bf16(exp(s[j] − m'))   for j < n, and 0 at j = n when n is odd
//	l[r] = a·l[r] + Σ_j exp(s[j] − m')  (the sum before rounding)
//	O[r·ldo : r·ldo+no] *= a,           m[r] = m'
//
// A row starts with m[r] = −Inf and l[r] = 0 (then a = 0). The exponential
// is computed as 2^((s − m')·log₂e) with a degree-4 polynomial (relative
// error < 3e−6). It needs AVX512BF16 or Portable.
func (i ISA) SoftmaxBlockBF16(p []uint16, ldp int, s []float32, lds, rows, n int, m, l, o []float32, ldo, no int) error {
	if err := checkBlock(len(p), ldp, (n+1)&^1, len(s), lds, rows, n, m, l, len(o), ldo, no); err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	switch {
	case i >= AVX512BF16:
		for r0 := 0; r0 < rows; r0 += 16 { // the kernel takes up to 16 rows
			k := min(16, rows-r0)
			softmaxBlockBF16AVX512(&p[r0*ldp], uintptr(2*ldp), &s[r0*lds], uintptr(4*lds), k, n, &m[r0], &l[r0], oPtr(o, r0*ldo, no), uintptr(4*ldo), no)
		}
	case i == Portable:
		for r := range rows {
			a, mn := blockMax(maxOf(s[r*lds:r*lds+n]), m[r], exp2BF16Coef[:])
			nml := -mn * log2e
			var sum float32
			pr := p[r*ldp:]
			for j, v := range s[r*lds : r*lds+n] {
				e := exp2Poly(v*log2e+nml, exp2BF16Coef[:])
				pr[j] = bf16.FromFloat32FTZ(e)
				sum += e
			}
			if n%2 == 1 {
				pr[n] = 0
			}
			finishRow(r, a, mn, sum, m, l, o, ldo, no)
		}
	default:
		return fmt.Errorf("kernels: bf16 softmax needs %s or %s, not %s", AVX512BF16, Portable, i)
	}
	return nil
}

// SoftmaxBlockF32 is SoftmaxBlockBF16 with float32 probabilities, the
// exponential computed with a degree-6 polynomial (relative error < 2e−7),
// and no padding column.
func (i ISA) SoftmaxBlockF32(p []float32, ldp int, s []float32, lds, rows, n int, m, l, o []float32, ldo, no int) error {
	if err := checkBlock(len(p), ldp, n, len(s), lds, rows, n, m, l, len(o), ldo, no); err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	if i >= AVX512 {
		for r0 := 0; r0 < rows; r0 += 16 {
			k := min(16, rows-r0)
			softmaxBlockF32AVX512(&p[r0*ldp], uintptr(4*ldp), &s[r0*lds], uintptr(4*lds), k, n, &m[r0], &l[r0], oPtr(o, r0*ldo, no), uintptr(4*ldo), no)
		}
		return nil
	}
	for r := range rows {
		sr, pr := s[r*lds:r*lds+n], p[r*ldp:r*ldp+n]
		a, mn := blockMax(i.rowMax(sr), m[r], exp2F32Coef[:])
		nml := -mn * log2e
		var sum float32
		n8 := 0
		if i == AVX2 {
			if n8 = n &^ 7; n8 > 0 {
				sum = exp2AVX2(&pr[0], &sr[0], n8, log2e, nml)
			}
		}
		for j := n8; j < n; j++ {
			pr[j] = exp2Poly(sr[j]*log2e+nml, exp2F32Coef[:])
			sum += pr[j]
		}
		finishRow(r, a, mn, sum, m, l, o, ldo, no)
	}
	return nil
}

// rowMax is maxOf(s), vectorised with AVX2 (AVX2 is the only ISA that calls it).
func (i ISA) rowMax(s []float32) float32 {
	n8 := len(s) &^ 7
	if i != AVX2 || n8 == 0 {
		return maxOf(s)
	}
	return max(maxAVX2(&s[0], n8), maxOf(s[n8:]))
}

// oPtr is &o[off], or nil when the rows of o have no columns.
func oPtr(o []float32, off, no int) *float32 {
	if no == 0 {
		return nil
	}
	return &o[off]
}

// blockMax returns the rescaling factor a = exp(mOld − m') (computed with
// the polynomial coef) and the new running maximum m' = max(mOld, mx), mx
// being the block row's maximum.
func blockMax(mx, mOld float32, coef []float32) (a, mNew float32) {
	mNew = max(mOld, mx)
	t := max((mOld-mNew)*log2e, alphaMin)
	return exp2Poly(t, coef), mNew
}

// finishRow updates the running sum and maximum of row r and rescales its
// output accumulator.
func finishRow(r int, a, mNew, sum float32, m, l, o []float32, ldo, no int) {
	l[r] = l[r]*a + sum
	m[r] = mNew
	if a != 1 {
		for j := range o[r*ldo : r*ldo+no] {
			o[r*ldo+j] *= a
		}
	}
}

func checkBlock(plen, ldp, pcols, slen, lds, rows, n int, m, l []float32, olen, ldo, no int) error {
	switch {
	case rows < 0 || n < 1 || no < 0:
		return fmt.Errorf("kernels: softmax block of %d rows × %d columns (output rows of %d)", rows, n, no)
	case rows == 0:
		return nil
	case len(m) < rows || len(l) < rows:
		return fmt.Errorf("kernels: softmax block of %d rows with %d maxima and %d sums", rows, len(m), len(l))
	case lds < n || slen < (rows-1)*lds+n:
		return fmt.Errorf("kernels: softmax block scores hold %d values, [%d %d] with stride %d needs %d", slen, rows, n, lds, (rows-1)*lds+n)
	case ldp < pcols || plen < (rows-1)*ldp+pcols:
		return fmt.Errorf("kernels: softmax block probabilities hold %d values, [%d %d] with stride %d needs %d", plen, rows, pcols, ldp, (rows-1)*ldp+pcols)
	case no > 0 && (ldo < no || olen < (rows-1)*ldo+no):
		return fmt.Errorf("kernels: softmax block output holds %d values, [%d %d] with stride %d needs %d", olen, rows, no, ldo, (rows-1)*ldo+no)
	}
	return nil
}

// ScaleRowsBF16 writes dst[r·ldd+j] = bf16(src[r·lds+j]·f[r]) for r < rows,
// j < n: the final 1/l normalisation of attention output rows.
func (i ISA) ScaleRowsBF16(dst []uint16, ldd int, src []float32, lds, rows, n int, f []float32) error {
	if err := checkRows(len(dst), ldd, len(src), lds, rows, n, len(f)); err != nil {
		return err
	}
	if rows == 0 || n == 0 {
		return nil
	}
	if i >= AVX512BF16 {
		scaleRowsBF16AVX512(&dst[0], uintptr(2*ldd), &src[0], uintptr(4*lds), rows, n, &f[0])
		return nil
	}
	for r := range rows {
		i.ScaleBF16(dst[r*ldd:r*ldd+n], src[r*lds:r*lds+n], f[r])
	}
	return nil
}

// ScaleRows writes dst[r·ldd+j] = src[r·lds+j]·f[r] for r < rows, j < n.
func (i ISA) ScaleRows(dst []float32, ldd int, src []float32, lds, rows, n int, f []float32) error {
	if err := checkRows(len(dst), ldd, len(src), lds, rows, n, len(f)); err != nil {
		return err
	}
	if rows == 0 || n == 0 {
		return nil
	}
	if i >= AVX512 {
		scaleRowsF32AVX512(&dst[0], uintptr(4*ldd), &src[0], uintptr(4*lds), rows, n, &f[0])
		return nil
	}
	for r := range rows {
		i.Scale(dst[r*ldd:r*ldd+n], src[r*lds:r*lds+n], f[r])
	}
	return nil
}

func checkRows(dlen, ldd, slen, lds, rows, n, flen int) error {
	switch {
	case rows < 0 || n < 0:
		return fmt.Errorf("kernels: scale rows: negative shape [%d %d]", rows, n)
	case rows == 0 || n == 0:
		return nil
	case flen < rows:
		return fmt.Errorf("kernels: scale rows: %d factors for %d rows", flen, rows)
	case ldd < n || dlen < (rows-1)*ldd+n:
		return fmt.Errorf("kernels: scale rows: destination holds %d values, [%d %d] with stride %d needs %d", dlen, rows, n, ldd, (rows-1)*ldd+n)
	case lds < n || slen < (rows-1)*lds+n:
		return fmt.Errorf("kernels: scale rows: source holds %d values, [%d %d] with stride %d needs %d", slen, rows, n, lds, (rows-1)*lds+n)
	}
	return nil
}

// AddBF16 adds bf16 values to float32 ones: dst[i] += float32(src[i]), for
// i < len(dst) (src must be at least as long).
func (i ISA) AddBF16(dst []float32, src []uint16) {
	n := len(dst)
	if n == 0 {
		return
	}
	src = src[:n]
	n0 := 0
	switch {
	case i >= AVX512:
		addBF16AVX512(&dst[0], &src[0], n)
		return
	case i == AVX2:
		if n0 = n &^ 7; n0 > 0 {
			addBF16AVX2(&dst[0], &src[0], n0)
		}
	}
	for j := n0; j < n; j++ {
		dst[j] += bf16.ToFloat32(src[j])
	}
}
