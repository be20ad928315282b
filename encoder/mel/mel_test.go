package mel

import (
	"archive/zip"
	"bytes"
	"fmt"
	"math"
	"math/cmplx"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

const refDir = "../../testdata/mel"

// TestFiltersEqualWhisper checks the embedded filterbank against the shared
// copy of Whisper's mel_filters.npz, value for value.
func TestFiltersEqualWhisper(t *testing.T) {
	shared, err := os.ReadFile("../../../shared/data/whisper/mel_filters.npz")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{80, 128} {
		want, err := loadFilters(shared, n)
		if err != nil {
			t.Fatal(err)
		}
		fb, err := Filters(n)
		if err != nil {
			t.Fatal(err)
		}
		got := fb.Dense()
		for i := range want.Data {
			if got[i] != want.Data[i] {
				t.Fatalf("mel_%d[%d][%d] = %g, Whisper's is %g", n, i/Bins, i%Bins, got[i], want.Data[i])
			}
		}
	}
	if _, err := Filters(64); err == nil || !strings.Contains(err.Error(), "want 80 or 128") {
		t.Errorf("Filters(64): err %v", err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(filtersNPZ), int64(len(filtersNPZ)))
	if len(zr.File) != 2 {
		t.Errorf("embedded archive has %d files, want 2", len(zr.File))
	}
}

// naiveDFT is the defining sum, in float64.
func naiveDFT(x []complex128) []complex128 {
	n := len(x)
	out := make([]complex128, n)
	for k := range out {
		for j, v := range x {
			out[k] += v * cmplx.Rect(1, -2*math.Pi*float64(j*k%n)/float64(n))
		}
	}
	return out
}

func TestFFTAgainstDFT(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 8, 12, 15, 20, 25, 60, 100, 200, 400} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f, err := newFFT(n)
			if err != nil {
				t.Fatal(err)
			}
			x := make([]complex128, n)
			seed := uint32(n)
			for i := range x {
				seed = 1664525*seed + 1013904223
				x[i] = complex(float64(seed)/(1<<32)-0.5, float64(i%7)-3)
			}
			got := make([]complex128, n)
			f.transform(got, x)
			for k, w := range naiveDFT(x) {
				if cmplx.Abs(got[k]-w) > 1e-9*float64(n) {
					t.Fatalf("X[%d] = %v, DFT gives %v", k, got[k], w)
				}
			}
		})
	}
	if _, err := newFFT(14); err == nil {
		t.Error("newFFT(14): no error for prime factor 7")
	}
}

func TestRealFFTPower(t *testing.T) {
	r, err := newRealFFT(NFFT)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, NFFT)
	c := make([]complex128, NFFT)
	for i := range x {
		x[i] = math.Sin(float64(i)*0.37) + 0.1*float64(i%11)
		c[i] = complex(x[i], 0)
	}
	got := make([]float64, Bins)
	r.power(got, x)
	for k, w := range naiveDFT(c)[:Bins] {
		want := real(w)*real(w) + imag(w)*imag(w)
		if math.Abs(got[k]-want) > 1e-9*(1+want) {
			t.Fatalf("power[%d] = %g, DFT gives %g", k, got[k], want)
		}
	}
}

// lcgNoise and synthetic mirror testdata/gen/mel_reference.py exactly.
func lcgNoise(n int, seed uint32) []float64 {
	out := make([]float64, n)
	x := seed
	for i := range out {
		x = 1664525*x + 1013904223
		out[i] = float64(x)/4294967296.0 - 0.5
	}
	return out
}

func synthetic(name string) []float32 {
	gen := func(sec float64, f func(t float64, i int) float64) []float32 {
		x := make([]float32, int(sec*SampleRate))
		for i := range x {
			x[i] = float32(f(float64(i)/SampleRate, i))
		}
		return x
	}
	switch name {
	case "chirp":
		return gen(30, func(t float64, _ int) float64 {
			return 0.5 * math.Sin(2*math.Pi*(50*t+(8000-50)/(2*30.0)*t*t))
		})
	case "tones_noise":
		noise := lcgNoise(20*SampleRate, 42)
		return gen(20, func(t float64, i int) float64 {
			return 0.3*math.Sin(2*math.Pi*440*t) + 0.2*math.Sin(2*math.Pi*1234.5*t+1) + 0.1*math.Cos(2*math.Pi*5000*t) + 0.01*noise[i]
		})
	case "burst":
		return gen(0.7, func(t float64, _ int) float64 { return 0.8 * math.Exp(-3*t) * math.Sin(2*math.Pi*1000*t) })
	case "long":
		return gen(35, func(t float64, _ int) float64 {
			return 0.25 * math.Sin(2*math.Pi*300*t) * (1 + 0.5*math.Sin(2*math.Pi*0.5*t))
		})
	}
	panic(name)
}

// TestLogMelAgainstTorch compares LogMel with torch.stft references computed
// by testdata/gen/mel_reference.py: jfk (16 kHz, resampled by sox so that this
// test does not depend on our resampler) and synthetic signals.
func TestLogMelAgainstTorch(t *testing.T) {
	wav, err := os.ReadFile(filepath.Join(refDir, "jfk_16k.wav"))
	if err != nil {
		t.Fatal(err)
	}
	jfk, err := audio.DecodeWAV(wav)
	if err != nil {
		t.Fatal(err)
	}
	if jfk.Rate != SampleRate || jfk.Channels != 1 {
		t.Fatalf("jfk_16k.wav: %d Hz, %d channels", jfk.Rate, jfk.Channels)
	}
	for _, tc := range []struct {
		signal string
		nMels  int
	}{
		{"jfk", 80}, {"jfk", 128}, {"chirp", 80}, {"tones_noise", 80}, {"burst", 80}, {"long", 128},
	} {
		t.Run(fmt.Sprintf("%s_%d", tc.signal, tc.nMels), func(t *testing.T) {
			samples := jfk.Samples
			if tc.signal != "jfk" {
				samples = synthetic(tc.signal)
			}
			want := readRef(t, fmt.Sprintf("%s_%d.npy", tc.signal, tc.nMels), tc.nMels)
			got, err := LogMel(samples, tc.nMels)
			if err != nil {
				t.Fatal(err)
			}
			worst, at := 0.0, 0
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > worst {
					worst, at = d, i
				}
			}
			t.Logf("max |LogMel - torch.stft reference| = %.2e at [%d, %d]", worst, at/Frames, at%Frames)
			if worst > 1e-4 {
				t.Errorf("max |difference| %.3g at [%d, %d] (got %g, want %g), want ≤ 1e-4", worst, at/Frames, at%Frames, got[at], want[at])
			}
		})
	}
}

func readRef(t *testing.T, name string, nMels int) []float32 {
	t.Helper()
	f, err := os.Open(filepath.Join(refDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := npy.Read(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 || a.Shape[0] != nMels || a.Shape[1] != Frames {
		t.Fatalf("%s: shape %v, want [%d %d]", name, a.Shape, nMels, Frames)
	}
	return a.Data
}

// TestLogMelSilence: all-zero audio gives log10(1e-10) = -10 everywhere, so
// the clamp changes nothing and every value is (-10 + 4) / 4 = -1.5.
func TestLogMelSilence(t *testing.T) {
	got, err := LogMel(nil, 80)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != -1.5 {
			t.Fatalf("value %d = %g, want -1.5", i, v)
		}
	}
}

func TestWindows(t *testing.T) {
	for _, tc := range []struct{ n, windows, last int }{
		{0, 1, 0}, {1, 1, 1}, {WindowSamples, 1, WindowSamples}, {WindowSamples + 1, 2, 1}, {75 * SampleRate, 3, 15 * SampleRate},
	} {
		w := Windows(make([]float32, tc.n))
		if len(w) != tc.windows || len(w[len(w)-1]) != tc.last {
			t.Errorf("Windows(%d samples): %d windows, last %d; want %d, %d", tc.n, len(w), len(w[len(w)-1]), tc.windows, tc.last)
		}
	}
}

func TestCheck(t *testing.T) {
	ok := make([]float32, 80*10)
	nan := append([]float32(nil), ok...)
	nan[80*10-1] = float32(math.NaN())
	inf := append([]float32(nil), ok...)
	inf[12] = float32(math.Inf(1))
	huge := append([]float32(nil), ok...)
	huge[5] = 3e38
	edge := append([]float32(nil), ok...)
	edge[0], edge[1] = MaxLogMel, -MaxLogMel
	over := append([]float32(nil), ok...)
	over[10] = -MaxLogMel - 0.5
	for _, tc := range []struct {
		name  string
		data  []float32
		shape []int
		want  string
	}{
		{"ok", ok, []int{80, 10}, ""},
		{"1-D", ok, []int{800}, "want 2 dimensions"},
		{"wrong n_mels", ok, []int{128, 10}, "n_mels 128, this model takes 80"},
		{"too many frames", make([]float32, 80*3001), []int{80, 3001}, "3001 frames, want 1 to 3000"},
		{"zero frames", nil, []int{80, 0}, "0 frames"},
		{"short data", ok[:10], []int{80, 10}, "holds 800 values, got 10"},
		{"NaN", nan, []int{80, 10}, "value NaN at [79, 9]"},
		{"Inf", inf, []int{80, 10}, "value +Inf at [1, 2]"},
		{"3e38", huge, []int{80, 10}, "value 3e+38 at [0, 5]: want values within ±100"},
		{"±MaxLogMel", edge, []int{80, 10}, ""},
		{"below -MaxLogMel", over, []int{80, 10}, "value -100.5 at [1, 0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.data, tc.shape, 80)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPad: padding a log-mel computed from audio shorter than 30 s gives the
// log-mel of that audio padded with silence, except the frames whose STFT
// window straddles the audio's end.
func TestPad(t *testing.T) {
	burst := synthetic("burst") // 0.7 s: 70 frames of audio
	full, err := LogMel(burst, 80)
	if err != nil {
		t.Fatal(err)
	}
	const frames = 70
	short := make([]float32, 80*frames)
	for m := range 80 {
		copy(short[m*frames:(m+1)*frames], full[m*Frames:m*Frames+frames])
	}
	padded := Pad(short, 80, frames)
	for m := range 80 {
		for tt := frames + 2; tt < Frames; tt++ {
			if got, want := padded[m*Frames+tt], full[m*Frames+tt]; got != want {
				t.Fatalf("padded[%d][%d] = %g, log-mel of the padded audio has %g", m, tt, got, want)
			}
		}
	}
	if got := Pad(full, 80, Frames); &got[0] != &full[0] {
		t.Error("Pad of a full window copied it")
	}
}

// dftTable is the alternative to the FFT: a real DFT by a precomputed
// [Bins][NFFT] cosine/sine table. Kept here to measure against the FFT.
type dftTable struct{ cos, sin []float64 }

func newDFTTable() *dftTable {
	d := &dftTable{cos: make([]float64, Bins*NFFT), sin: make([]float64, Bins*NFFT)}
	for k := range Bins {
		for n := range NFFT {
			d.cos[k*NFFT+n] = math.Cos(2 * math.Pi * float64(k*n%NFFT) / NFFT)
			d.sin[k*NFFT+n] = math.Sin(2 * math.Pi * float64(k*n%NFFT) / NFFT)
		}
	}
	return d
}

func (d *dftTable) power(out, x []float64) {
	for k := range Bins {
		var re, im float64
		c, s := d.cos[k*NFFT:(k+1)*NFFT], d.sin[k*NFFT:(k+1)*NFFT]
		for n, v := range x {
			re += v * c[n]
			im -= v * s[n]
		}
		out[k] = re*re + im*im
	}
}

func TestDFTTableMatchesFFT(t *testing.T) {
	r, _ := newRealFFT(NFFT)
	x := make([]float64, NFFT)
	for i := range x {
		x[i] = math.Cos(float64(i) * 1.1)
	}
	a, b := make([]float64, Bins), make([]float64, Bins)
	r.power(a, x)
	newDFTTable().power(b, x)
	for k := range a {
		if math.Abs(a[k]-b[k]) > 1e-9*(1+a[k]) {
			t.Fatalf("bin %d: FFT %g, DFT table %g", k, a[k], b[k])
		}
	}
}

// BenchmarkPower compares one frame's power spectrum by the mixed-radix FFT
// and by the precomputed DFT table, side by side.
func BenchmarkPower(b *testing.B) {
	x := make([]float64, NFFT)
	for i := range x {
		x[i] = math.Sin(float64(i))
	}
	out := make([]float64, Bins)
	b.Run("fft", func(b *testing.B) {
		r, _ := newRealFFT(NFFT)
		for b.Loop() {
			r.power(out, x)
		}
	})
	b.Run("dft-table", func(b *testing.B) {
		d := newDFTTable()
		for b.Loop() {
			d.power(out, x)
		}
	})
}

// BenchmarkLogMel is one 30 s window (80 mel bands): the front end's cost per
// encoder window.
func BenchmarkLogMel(b *testing.B) {
	x := synthetic("chirp")
	for b.Loop() {
		if _, err := LogMel(x, 80); err != nil {
			b.Fatal(err)
		}
	}
}
