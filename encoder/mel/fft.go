package mel

import (
	"fmt"
	"math"
	"math/cmplx"
)

// fft is a mixed-radix (2, 3, 4, 5) decimation-in-time complex FFT plan of
// one size: X[k] = Σ_n x[n]·exp(-2πi·nk/N).
type fft struct {
	n       int
	factors []int        // radices, outermost first; their product is n
	twiddle []complex128 // exp(-2πi·j/n), j < n
}

// newFFT plans an FFT of size n, which must factor into 2, 3, 4 and 5.
func newFFT(n int) (*fft, error) {
	f := &fft{n: n, twiddle: make([]complex128, n)}
	for j := range f.twiddle {
		f.twiddle[j] = cmplx.Rect(1, -2*math.Pi*float64(j)/float64(n))
	}
	for rest := n; rest > 1; {
		switch {
		case rest%4 == 0:
			f.factors, rest = append(f.factors, 4), rest/4
		case rest%2 == 0:
			f.factors, rest = append(f.factors, 2), rest/2
		case rest%3 == 0:
			f.factors, rest = append(f.factors, 3), rest/3
		case rest%5 == 0:
			f.factors, rest = append(f.factors, 5), rest/5
		default:
			return nil, fmt.Errorf("fft: size %d has a prime factor other than 2, 3, 5", n)
		}
	}
	return f, nil
}

// transform writes the DFT of in (read with the given stride) to out[:n].
func (f *fft) transform(out, in []complex128) {
	f.rec(out, in, f.n, 1, f.factors)
}

// rec is one Cooley–Tukey step: r sub-transforms of size m = n/r over the
// inputs q, q+r, q+2r, ... (times stride), then m radix-r butterflies.
func (f *fft) rec(out, in []complex128, n, stride int, factors []int) {
	if n == 1 {
		out[0] = in[0]
		return
	}
	r := factors[0]
	m := n / r
	for q := range r {
		f.rec(out[q*m:(q+1)*m], in[q*stride:], m, stride*r, factors[1:])
	}
	step := f.n / n // twiddle index step for W_n
	switch r {
	case 2:
		for k := range m {
			a, b := out[k], out[m+k]*f.twiddle[k*step]
			out[k], out[m+k] = a+b, a-b
		}
	case 4:
		for k := range m {
			a := out[k]
			b := out[m+k] * f.twiddle[k*step]
			c := out[2*m+k] * f.twiddle[2*k*step]
			d := out[3*m+k] * f.twiddle[3*k*step]
			s0, s1 := a+c, a-c
			s2, s3 := b+d, b-d
			s3 = complex(imag(s3), -real(s3)) // -i·(b-d)
			out[k], out[m+k], out[2*m+k], out[3*m+k] = s0+s2, s1+s3, s0-s2, s1-s3
		}
	case 5:
		f.radix5(out, m, step)
	default:
		f.butterfly(out, n, m, r, step)
	}
}

// Radix-5 constants: cos and sin of 2π/5 and 4π/5.
var (
	c51, s51 = math.Cos(2 * math.Pi / 5), math.Sin(2 * math.Pi / 5)
	c52, s52 = math.Cos(4 * math.Pi / 5), math.Sin(4 * math.Pi / 5)
)

// radix5 is the radix-5 step written out: with ω = exp(-2πi/5),
// y_j = Σ_q t_q ω^{jq} from the sums and differences of t1±t4 and t2±t3.
func (f *fft) radix5(out []complex128, m, step int) {
	for k := range m {
		t0 := out[k]
		t1 := out[m+k] * f.twiddle[k*step]
		t2 := out[2*m+k] * f.twiddle[2*k*step]
		t3 := out[3*m+k] * f.twiddle[3*k*step]
		t4 := out[4*m+k] * f.twiddle[4*k*step]
		a1, b1 := t1+t4, t1-t4
		a2, b2 := t2+t3, t2-t3
		m1 := t0 + complex(c51, 0)*a1 + complex(c52, 0)*a2
		m2 := t0 + complex(c52, 0)*a1 + complex(c51, 0)*a2
		n1 := complex(s51, 0)*b1 + complex(s52, 0)*b2
		n2 := complex(s52, 0)*b1 - complex(s51, 0)*b2
		in1 := complex(-imag(n1), real(n1)) // i·n1
		in2 := complex(-imag(n2), real(n2))
		out[k] = t0 + a1 + a2
		out[m+k], out[4*m+k] = m1-in1, m1+in1
		out[2*m+k], out[3*m+k] = m2-in2, m2+in2
	}
}

// butterfly is the generic radix-r step (r = 3): a small DFT across the
// r sub-transforms after twiddling them.
func (f *fft) butterfly(out []complex128, n, m, r, step int) {
	var t, s [5]complex128
	for k := range m {
		for q := range r {
			t[q] = out[q*m+k] * f.twiddle[q*k*step] // q·k·step < n: no wrap
		}
		for j := range r {
			var acc complex128
			for q := range r {
				acc += t[q] * f.twiddle[(j*q%r)*(f.n/r)]
			}
			s[j] = acc
		}
		for j := range r {
			out[j*m+k] = s[j]
		}
	}
}

// realFFT computes the first n/2+1 bins of the DFT of a real signal of even
// length n with one complex FFT of size n/2 (even samples as real parts, odd
// as imaginary parts) and the usual split step.
type realFFT struct {
	n     int
	half  *fft
	split []complex128 // exp(-2πi·k/n), k ≤ n/2
	z, zf []complex128
}

// newRealFFT plans a real FFT of even size n.
func newRealFFT(n int) (*realFFT, error) {
	if n%2 != 0 {
		return nil, fmt.Errorf("fft: real transform size %d, want even", n)
	}
	half, err := newFFT(n / 2)
	if err != nil {
		return nil, err
	}
	r := &realFFT{n: n, half: half, split: make([]complex128, n/2+1), z: make([]complex128, n/2), zf: make([]complex128, n/2)}
	for k := range r.split {
		r.split[k] = cmplx.Rect(1, -2*math.Pi*float64(k)/float64(n))
	}
	return r, nil
}

// power writes |X[k]|², k = 0..n/2, for the real input x (len n).
func (r *realFFT) power(out, x []float64) {
	m := r.n / 2
	for j := range m {
		r.z[j] = complex(x[2*j], x[2*j+1])
	}
	r.half.transform(r.zf, r.z)
	for k := 0; k <= m; k++ {
		zk, zmk := r.zf[k%m], cmplx.Conj(r.zf[(m-k)%m])
		even := (zk + zmk) * 0.5
		odd := (zk - zmk) * complex(0, -0.5)
		xk := even + r.split[k]*odd
		out[k] = real(xk)*real(xk) + imag(xk)*imag(xk)
	}
}
