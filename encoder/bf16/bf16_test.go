package bf16

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// nearest is an independent oracle: of the two bfloat16 values around f, the
// nearer one (compared in float64), ties to the even mantissa.
func nearest(f float32) uint16 {
	b := math.Float32bits(f)
	lo := b &^ 0xffff
	hi := lo + 0x10000
	dlo := math.Abs(float64(f) - float64(math.Float32frombits(lo)))
	var dhi float64
	if hi&0x7f800000 == 0x7f800000 { // rounding up reaches Inf: the "next" value is 2^128
		dhi = math.Abs(math.Abs(float64(f)) - math.Ldexp(1, 128))
	} else {
		dhi = math.Abs(float64(f) - float64(math.Float32frombits(hi)))
	}
	switch {
	case dlo < dhi:
		return uint16(lo >> 16)
	case dhi < dlo:
		return uint16(hi >> 16)
	case (lo>>16)&1 == 0:
		return uint16(lo >> 16)
	default:
		return uint16(hi >> 16)
	}
}

func TestFromFloat32Table(t *testing.T) {
	tests := []struct {
		name string
		in   uint32
		want uint16
	}{
		{"zero", 0x00000000, 0x0000},
		{"negative zero", 0x80000000, 0x8000},
		{"one", 0x3f800000, 0x3f80},
		{"tie rounds down to even", 0x3f808000, 0x3f80},
		{"tie rounds up to even", 0x3f818000, 0x3f82},
		{"above tie rounds up", 0x3f808001, 0x3f81},
		{"below tie rounds down", 0x3f807fff, 0x3f80},
		{"+Inf", 0x7f800000, 0x7f80},
		{"-Inf", 0xff800000, 0xff80},
		{"max float32 overflows to Inf", 0x7f7fffff, 0x7f80},
		{"largest bf16 stays", 0x7f7f0000, 0x7f7f},
		{"smallest subnormal rounds to zero", 0x00000001, 0x0000},
		{"subnormal tie to even up", 0x00018000, 0x0002},
		{"quiet NaN", 0x7fc00000, 0x7fc0},
		{"negative NaN keeps sign", 0xffc00001, 0xffc0},
		{"signalling NaN with low payload stays NaN", 0x7f800001, 0x7fc0},
		{"NaN with payload just below the cut stays NaN", 0x7fbfffff, 0x7fff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromFloat32(math.Float32frombits(tt.in))
			if got != tt.want {
				t.Errorf("FromFloat32(%#08x) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
}

// TestFromFloat32FTZ checks the flush-to-zero variant against an independent
// reading of its definition: a zero exponent gives a zero of the input's sign,
// every other input rounds exactly as the nearest-even oracle (NaN stays NaN).
// Every upper half is tried with the low halves at and around the rounding cut.
func TestFromFloat32FTZ(t *testing.T) {
	for _, tc := range []struct {
		in, want uint32
	}{
		{0x00400000, 0x0000}, // subnormal: FromFloat32 gives 0x0040
		{0x80400000, 0x8000}, // negative subnormal keeps its sign
		{0x007fffff, 0x0000}, // largest subnormal: FromFloat32 gives 0x0080
		{0x00800000, 0x0080}, // smallest normal stays
		{0x3f808000, 0x3f80}, // tie to even, as FromFloat32
		{0x7f7fffff, 0x7f80}, // overflow to +Inf
		{0x7f800001, 0x7fc0}, // signalling NaN becomes quiet
	} {
		if got := FromFloat32FTZ(math.Float32frombits(tc.in)); uint32(got) != tc.want {
			t.Errorf("FromFloat32FTZ(%#08x) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	for hi := uint32(0); hi <= 0xffff; hi++ {
		for _, lo := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff} {
			b := hi<<16 | lo
			f := math.Float32frombits(b)
			got := FromFloat32FTZ(f)
			switch {
			case b&0x7f800000 == 0:
				if want := uint16(b>>16) & 0x8000; got != want {
					t.Fatalf("FromFloat32FTZ(%#08x) = %#04x, want the signed zero %#04x", b, got, want)
				}
			case math.IsNaN(float64(f)):
				if !math.IsNaN(float64(ToFloat32(got))) || got>>15 != uint16(b>>31) {
					t.Fatalf("FromFloat32FTZ(NaN %#08x) = %#04x, want a NaN of the same sign", b, got)
				}
			default:
				if want := nearest(f); got != want {
					t.Fatalf("FromFloat32FTZ(%#08x) = %#04x, oracle %#04x", b, got, want)
				}
			}
		}
	}
}

func TestRoundTripEveryBF16(t *testing.T) {
	for h := 0; h <= 0xffff; h++ {
		f := ToFloat32(uint16(h))
		got := FromFloat32(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(ToFloat32(got))) {
				t.Fatalf("NaN %#04x converted to non-NaN %#04x", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("round trip %#04x → %g → %#04x", h, f, got)
		}
	}
}

func TestFromFloat32MatchesNearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2_000_000; i++ {
		b := r.Uint32()
		f := math.Float32frombits(b)
		if math.IsNaN(float64(f)) {
			continue
		}
		if got, want := FromFloat32(f), nearest(f); got != want {
			t.Fatalf("FromFloat32(%#08x) = %#04x, oracle %#04x", b, got, want)
		}
	}
}

func TestSliceHelpers(t *testing.T) {
	src := []float32{1, -2.5, 3.14159, float32(math.Inf(-1)), 1e-40}
	h := make([]uint16, len(src))
	FromFloat32s(h, src)
	back := make([]float32, len(src))
	ToFloat32s(back, h)
	for i := range src {
		if h[i] != FromFloat32(src[i]) || back[i] != ToFloat32(h[i]) {
			t.Errorf("element %d: %g → %#04x → %g", i, src[i], h[i], back[i])
		}
	}
}

func TestConvertStats(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name                 string
		src                  []float32
		count, nonFin, ovf   int64
		maxAbs, relRMS, tolR float64
	}{
		{"exact values", []float32{1, 2, -0.5, 0}, 4, 0, 0, 0, 0, 0},
		{"all zero", []float32{0, 0}, 2, 0, 0, 0, 0, 0},
		// 1+2^-8 is a tie between 1 and 1+2^-7: rounds to even (1).
		{"one tie", []float32{1 + 1.0/256}, 1, 0, 0, 1.0 / 256, (1.0 / 256) / (1 + 1.0/256), 1e-12},
		{"non-finite excluded", []float32{nan, inf, 1}, 1, 2, 0, 0, 0, 0},
		{"overflow excluded", []float32{math.MaxFloat32, 2}, 1, 0, 1, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]uint16, len(tt.src))
			s := Convert(dst, tt.src)
			if s.Count != tt.count || s.NonFinite != tt.nonFin || s.Overflow != tt.ovf {
				t.Errorf("counts = %d/%d/%d, want %d/%d/%d", s.Count, s.NonFinite, s.Overflow, tt.count, tt.nonFin, tt.ovf)
			}
			if s.MaxAbs != tt.maxAbs || math.Abs(s.RelRMS-tt.relRMS) > tt.tolR {
				t.Errorf("maxAbs %g relRMS %g, want %g %g", s.MaxAbs, s.RelRMS, tt.maxAbs, tt.relRMS)
			}
			var inc ErrorStats
			for i, x := range tt.src {
				inc.Add(x, dst[i])
			}
			var merged ErrorStats
			merged.Merge(inc)
			if merged.Count != s.Count || merged.MaxAbs != s.MaxAbs || math.Abs(merged.RelRMS-s.RelRMS) > 1e-15 {
				t.Errorf("Add/Merge stats %+v differ from Convert %+v", merged, s)
			}
		})
	}
}

func BenchmarkConvert(b *testing.B) {
	src := make([]float32, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	dst := make([]uint16, len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		Convert(dst, src)
	}
}

func TestConvertVariantsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, dims := range [][2]int{{1, 1}, {3, 70}, {64, 33}, {100, 40}} {
		rows, cols := dims[0], dims[1]
		src := make([]float32, rows*cols)
		le := make([]byte, 4*len(src))
		for i := range src {
			src[i] = float32(r.NormFloat64() * 3)
			if i == 7 {
				src[i] = float32(math.NaN())
			}
			binary.LittleEndian.PutUint32(le[4*i:], math.Float32bits(src[i]))
		}
		want := make([]uint16, len(src))
		ws := Convert(want, src)
		got := make([]uint16, len(src))
		if s := ConvertLE(got, le); s != ws || !slices.Equal(got, want) {
			t.Errorf("%v ConvertLE differs: %+v vs %+v", dims, s, ws)
		}
		tr := make([]uint16, len(src))
		trLE := make([]uint16, len(src))
		s1 := ConvertTransposed(tr, src, rows, cols)
		s2 := ConvertTransposedLE(trLE, le, rows, cols)
		for i := range rows {
			for j := range cols {
				if tr[j*rows+i] != want[i*cols+j] || trLE[j*rows+i] != want[i*cols+j] {
					t.Fatalf("%v: transposed [%d,%d] wrong", dims, j, i)
				}
			}
		}
		if s1.Count != ws.Count || s1.MaxAbs != ws.MaxAbs || s2.NonFinite != ws.NonFinite || math.Abs(s1.RelRMS-ws.RelRMS) > 1e-12 {
			t.Errorf("%v transposed stats %+v / %+v, want %+v", dims, s1, s2, ws)
		}
	}
}

func BenchmarkConvertTransposedLE(b *testing.B) {
	rows, cols := 512, 2048 // whisper-base fc1 as exported: [in, out]
	src := make([]byte, 4*rows*cols)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range rows * cols {
		binary.LittleEndian.PutUint32(src[4*i:], math.Float32bits(float32(r.NormFloat64())))
	}
	dst := make([]uint16, rows*cols)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		ConvertTransposedLE(dst, src, rows, cols)
	}
}

// Converting in parts gives the values and stats of converting at once.
func TestConverterParts(t *testing.T) {
	rows, cols := 70, 45
	r := rand.New(rand.NewPCG(7, 8))
	le := make([]byte, 4*rows*cols)
	for i := range rows * cols {
		binary.LittleEndian.PutUint32(le[4*i:], math.Float32bits(float32(r.NormFloat64())))
	}
	whole := make([]uint16, rows*cols)
	ws := ConvertTransposedLE(whole, le, rows, cols)
	parts := make([]uint16, rows*cols)
	var c Converter
	for i0 := 0; i0 < rows; i0 += 33 {
		i1 := min(i0+33, rows)
		c.TransposedLE(parts, le[4*i0*cols:4*i1*cols], rows, cols, i0)
	}
	if ps := c.Stats(); !slices.Equal(parts, whole) || ps.Count != ws.Count || ps.MaxAbs != ws.MaxAbs || math.Abs(ps.RelRMS-ws.RelRMS) > 1e-12 {
		t.Errorf("in parts: stats %+v, at once %+v (values equal: %v)", ps, ws, slices.Equal(parts, whole))
	}
	var l Converter
	flat := make([]uint16, rows*cols)
	l.LE(flat[:1000], le[:4000])
	l.LE(flat[1000:], le[4000:])
	want := make([]uint16, rows*cols)
	if s := ConvertLE(want, le); !slices.Equal(flat, want) || l.Stats().Count != s.Count {
		t.Error("LE in parts differs")
	}
}
