package audio

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Resampler design. The kernel is a Kaiser-windowed sinc whose cutoff sits at
// cutoff × the lower Nyquist frequency, reaching zeroCrossings zeros of the
// sinc on each side. Output instants fall at out/gcd(in, out) distinct
// fractional offsets from the input samples; when there are at most
// maxExactPhases of them (every common rate pair: 44.1 kHz → 16 kHz has 160)
// the kernel is tabulated at exactly those offsets (polyphase). Otherwise it
// is tabulated at interpPhases offsets and linearly interpolated between them.
const (
	cutoff         = 0.92
	zeroCrossings  = 32
	kaiserBeta     = 8.6
	maxExactPhases = 1024
	interpPhases   = 512
)

// kernel is the tabulated filter for one (in, out) rate pair.
type kernel struct {
	taps   int         // taps per output sample, 2*half
	half   int         // taps on each side of the output instant
	phases int         // rows of table, less the closing one
	exact  bool        // the rows are exactly the output instants' offsets
	table  [][]float32 // [phases+1][taps]; row p is the kernel at offset p/phases
}

var kernels sync.Map // [2]int{in, out} → *kernel

// Resample converts mono samples from rate in to rate out (both in Hz) with a
// band-limited windowed-sinc filter: everything above cutoff × min(in, out)/2
// is removed before it can alias. The output has ceil(len(x)·out/in) samples;
// the signal is taken as zero outside x.
func Resample(x []float32, in, out int) ([]float32, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("resample: rates %d Hz → %d Hz, want positive rates", in, out)
	}
	if in == out {
		return append([]float32(nil), x...), nil
	}
	k := kernelFor(in, out)
	n := int((int64(len(x))*int64(out) + int64(in) - 1) / int64(in))
	y := make([]float32, n)
	row := make([]float32, k.taps)
	g := int64(gcd(in, out))
	for i := range y {
		num := int64(i) * int64(in)
		k0 := int(num / int64(out)) // input sample at or before the output instant
		rem := num % int64(out)     // fractional offset × out
		if k.exact {
			y[i] = dot(x, k0-k.half+1, k.table[rem/g])
			continue
		}
		scaled := rem * int64(k.phases)
		p := int(scaled / int64(out))
		a := float32(scaled%int64(out)) / float32(out)
		taps, next := k.table[p], k.table[p+1]
		for j := range row {
			row[j] = taps[j] + a*(next[j]-taps[j])
		}
		y[i] = dot(x, k0-k.half+1, row)
	}
	return y, nil
}

// dot is Σ_j x[start+j]·taps[j], with x zero outside its bounds. Four
// partial sums keep the multiply-adds independent.
func dot(x []float32, start int, taps []float32) float32 {
	lo, hi := 0, len(taps)
	if start < 0 {
		lo = -start
	}
	if start+hi > len(x) {
		hi = len(x) - start
	}
	if lo >= hi {
		return 0
	}
	xs, ts := x[start+lo:start+hi], taps[lo:hi]
	var s0, s1, s2, s3 float32
	j := 0
	for ; j+4 <= len(ts); j += 4 {
		s0 += xs[j] * ts[j]
		s1 += xs[j+1] * ts[j+1]
		s2 += xs[j+2] * ts[j+2]
		s3 += xs[j+3] * ts[j+3]
	}
	for ; j < len(ts); j++ {
		s0 += xs[j] * ts[j]
	}
	return (s0 + s1) + (s2 + s3)
}

// Kernel cache bounds: tables of common rate pairs are small (44.1 kHz →
// 16 kHz: 124 KB) and kept; a table for an unusual pair (up to ~14 MB for
// 767,984 Hz) is built for its request and dropped, so clients cannot grow
// the cache by sending many rates.
const (
	maxCachedKernel = 1 << 20
	maxKernelCache  = 16 << 20
)

var kernelCacheBytes atomic.Int64

// kernelFor returns the kernel for a rate pair, cached when it is small and
// the cache has room.
func kernelFor(in, out int) *kernel {
	key := [2]int{in, out}
	if k, ok := kernels.Load(key); ok {
		return k.(*kernel)
	}
	k := newKernel(in, out)
	n := kernelBytes(in, out)
	if n > maxCachedKernel || kernelCacheBytes.Add(n) > maxKernelCache {
		if n <= maxCachedKernel {
			kernelCacheBytes.Add(-n)
		}
		return k
	}
	if old, loaded := kernels.LoadOrStore(key, k); loaded {
		kernelCacheBytes.Add(-n)
		return old.(*kernel)
	}
	return k
}

// kernelBytes is the size of the table newKernel builds for a rate pair.
func kernelBytes(in, out int) int64 {
	if in == out {
		return 0
	}
	fc := cutoff * 0.5 * math.Min(1, float64(out)/float64(in))
	taps := 2 * int64(math.Ceil(zeroCrossings/(2*fc)))
	phases := int64(interpPhases)
	if n := out / gcd(in, out); n <= maxExactPhases {
		phases = int64(n)
	}
	return (phases + 1) * taps * 4
}

// newKernel tabulates h(τ) = 2fc·sinc(2fc·τ)·kaiser(τ/W) in input-sample
// units, fc = cutoff·min(in, out)/(2·in) cycles per input sample and W the
// half-width holding zeroCrossings zeros. Each phase is normalised to unit DC
// gain.
func newKernel(in, out int) *kernel {
	fc := cutoff * 0.5 * math.Min(1, float64(out)/float64(in))
	width := zeroCrossings / (2 * fc)
	half := int(math.Ceil(width))
	k := &kernel{taps: 2 * half, half: half, phases: interpPhases}
	if n := out / gcd(in, out); n <= maxExactPhases {
		k.phases, k.exact = n, true
	}
	k.table = make([][]float32, k.phases+1)
	norm := besselI0(kaiserBeta)
	for p := range k.table {
		frac := float64(p) / float64(k.phases)
		row := make([]float64, k.taps)
		var sum float64
		for j := range row {
			tau := frac + float64(half-1-j) // output instant minus input sample time
			if math.Abs(tau) >= width {
				continue
			}
			r := tau / width
			row[j] = 2 * fc * sinc(2*fc*tau) * besselI0(kaiserBeta*math.Sqrt(1-r*r)) / norm
			sum += row[j]
		}
		k.table[p] = make([]float32, k.taps)
		for j, v := range row {
			k.table[p][j] = float32(v / sum)
		}
	}
	return k
}

// gcd is the greatest common divisor of two positive integers.
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// sinc is sin(πx)/(πx).
func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the modified Bessel function of the first kind, order 0, by its
// power series (converges quickly for the arguments a Kaiser window uses).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; term > 1e-17*sum; k++ {
		q := x / (2 * float64(k))
		term *= q * q
		sum += term
	}
	return sum
}
