package audio

import (
	"fmt"
	"math"
	"testing"
)

// tone is a sine of frequency f Hz and amplitude 0.5 sampled at rate for sec seconds.
func tone(f float64, rate int, sec float64) []float32 {
	x := make([]float32, int(sec*float64(rate)))
	for i := range x {
		x[i] = float32(0.5 * math.Sin(2*math.Pi*f*float64(i)/float64(rate)))
	}
	return x
}

// gainDB fits a·sin + b·cos at frequency f to the middle of y (away from the
// edges, where the signal starts and stops) and returns 20·log10(amplitude/0.5).
// For an aliased tone, f is where the alias lands.
func gainDB(y []float32, f float64, rate int) float64 {
	lo, hi := len(y)/4, 3*len(y)/4
	var ss, sc, cc, ys, yc float64
	for i := lo; i < hi; i++ {
		w := 2 * math.Pi * f * float64(i) / float64(rate)
		s, c := math.Sin(w), math.Cos(w)
		ss += s * s
		sc += s * c
		cc += c * c
		ys += float64(y[i]) * s
		yc += float64(y[i]) * c
	}
	det := ss*cc - sc*sc
	a := (ys*cc - yc*sc) / det
	b := (yc*ss - ys*sc) / det
	return 20 * math.Log10(math.Hypot(a, b)/0.5)
}

// rmsDB is the RMS of the middle half of y relative to the input tone's RMS.
func rmsDB(y []float32) float64 {
	lo, hi := len(y)/4, 3*len(y)/4
	var s float64
	for _, v := range y[lo:hi] {
		s += float64(v) * float64(v)
	}
	return 10 * math.Log10(s/float64(hi-lo)/0.125)
}

// TestResampleFrequencyResponse measures the resampler with pure tones: flat
// in the passband, and tones the output rate cannot represent are removed
// (not folded back as aliases) — the property linear interpolation lacks.
func TestResampleFrequencyResponse(t *testing.T) {
	for _, in := range []int{8000, 11025, 22050, 44100, 44101, 48000, 96000} { // 44101 Hz: the interpolated table
		nyq := float64(min(in, SampleRate)) / 2
		for _, f := range []float64{50, 440, 1000, 3000, 0.80 * nyq} {
			t.Run(fmt.Sprintf("%d Hz pass %.0f Hz", in, f), func(t *testing.T) {
				y, err := Resample(tone(f, in, 0.5), in, SampleRate)
				if err != nil {
					t.Fatal(err)
				}
				if g := gainDB(y, f, SampleRate); math.Abs(g) > 0.01 {
					t.Errorf("passband gain %.4f dB, want within ±0.01 dB", g)
				}
			})
		}
		if in <= SampleRate {
			continue
		}
		for _, f := range []float64{8100, 9000, 12000, 0.45 * float64(in)} {
			t.Run(fmt.Sprintf("%d Hz stop %.0f Hz", in, f), func(t *testing.T) {
				y, err := Resample(tone(f, in, 0.5), in, SampleRate)
				if err != nil {
					t.Fatal(err)
				}
				if g := rmsDB(y); g > -70 {
					t.Errorf("a %.0f Hz tone leaks through at %.1f dB, want ≤ -70 dB", f, g)
				}
			})
		}
	}
}

// TestResampleKnownSignal resamples a sum of in-band tones and compares it with
// the same signal evaluated analytically at the output instants.
func TestResampleKnownSignal(t *testing.T) {
	signal := func(sec float64) float64 {
		return 0.3*math.Sin(2*math.Pi*220*sec) + 0.2*math.Sin(2*math.Pi*1234.5*sec+1) + 0.1*math.Cos(2*math.Pi*3000*sec)
	}
	for _, in := range []int{8000, 22050, 44100, 44101, 48000} {
		t.Run(fmt.Sprint(in), func(t *testing.T) {
			x := make([]float32, in) // one second
			for i := range x {
				x[i] = float32(signal(float64(i) / float64(in)))
			}
			y, err := Resample(x, in, SampleRate)
			if err != nil {
				t.Fatal(err)
			}
			if len(y) != SampleRate {
				t.Fatalf("%d output samples, want %d", len(y), SampleRate)
			}
			var worst float64
			for i := SampleRate / 10; i < SampleRate*9/10; i++ {
				worst = math.Max(worst, math.Abs(float64(y[i])-signal(float64(i)/SampleRate)))
			}
			if worst > 2e-4 {
				t.Errorf("max |error| %.3g against the analytic signal, want ≤ 2e-4", worst)
			}
		})
	}
}

func TestResampleLengths(t *testing.T) {
	for _, tc := range []struct{ n, in, out, want int }{
		{44100, 44100, 16000, 16000}, {3, 48000, 16000, 1}, {4, 48000, 16000, 2},
		{10, 8000, 16000, 20}, {0, 44100, 16000, 0}, {5, 16000, 16000, 5},
	} {
		y, err := Resample(make([]float32, tc.n), tc.in, tc.out)
		if err != nil || len(y) != tc.want {
			t.Errorf("Resample(%d samples, %d→%d) = %d samples, %v; want %d", tc.n, tc.in, tc.out, len(y), err, tc.want)
		}
	}
	if _, err := Resample(nil, 0, 16000); err == nil {
		t.Error("rate 0: no error")
	}
}

// TestResampleTables: common rate pairs get an exact polyphase table, odd ones
// the interpolated one.
func TestResampleTables(t *testing.T) {
	for _, tc := range []struct {
		in, phases int
		exact      bool
	}{{44100, 160, true}, {22050, 320, true}, {48000, 1, true}, {8000, 2, true}, {44101, interpPhases, false}} {
		k := kernelFor(tc.in, SampleRate)
		if k.phases != tc.phases || k.exact != tc.exact {
			t.Errorf("%d Hz: %d phases (exact %v), want %d (%v)", tc.in, k.phases, k.exact, tc.phases, tc.exact)
		}
	}
}

// BenchmarkResample converts 30 s of audio to 16 kHz: 44.1 kHz uses the exact
// polyphase table, 44.101 kHz the interpolated one, side by side.
func BenchmarkResample(b *testing.B) {
	for _, in := range []int{44100, 44101, 22050, 48000} {
		b.Run(fmt.Sprint(in), func(b *testing.B) {
			x := tone(440, in, 30)
			b.SetBytes(int64(len(x) * 4))
			for b.Loop() {
				if _, err := Resample(x, in, SampleRate); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKernelBytes: the size the decode budget counts for a resampler table
// is the size newKernel builds, for common and unusual rate pairs.
func TestKernelBytes(t *testing.T) {
	for _, in := range []int{8000, 22050, 44100, 48000, 96000, 767984, 12345} {
		k := newKernel(in, SampleRate)
		got := int64(len(k.table)) * int64(k.taps) * 4
		if want := kernelBytes(in, SampleRate); got != want {
			t.Errorf("%d Hz: table of %d bytes, kernelBytes says %d", in, got, want)
		}
	}
}
