package bf16

import "math"

// ErrorStats summarizes the error of converting a tensor to bfloat16.
// Non-finite source values (NaN, ±Inf) are counted in NonFinite and left out
// of the error sums: bfloat16 keeps them exactly.
type ErrorStats struct {
	// Count is the number of finite values measured.
	Count int64 `json:"count"`
	// NonFinite is the number of NaN or ±Inf source values.
	NonFinite int64 `json:"nonFinite,omitempty"`
	// Overflow is the number of finite source values that rounded to ±Inf
	// (|x| ≥ 3.3961776e38); they are left out of the error sums.
	Overflow int64 `json:"overflow,omitempty"`
	// MaxAbs is max |x − bf16(x)| over the finite values.
	MaxAbs float64 `json:"maxAbsError"`
	// RelRMS is sqrt(Σ(x − bf16(x))² / Σx²), 0 when every x is 0.
	RelRMS float64 `json:"relRMSError"`

	sumSqErr, sumSq float64
}

// Add records one source value x and its bfloat16 conversion h.
func (s *ErrorStats) Add(x float32, h uint16) {
	if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
		s.NonFinite++
		return
	}
	y := ToFloat32(h)
	if math.IsInf(float64(y), 0) {
		s.Overflow++
		return
	}
	d := float64(x) - float64(y)
	s.Count++
	s.sumSqErr += d * d
	s.sumSq += float64(x) * float64(x)
	if a := math.Abs(d); a > s.MaxAbs {
		s.MaxAbs = a
	}
	s.finish()
}

// Merge adds the values recorded in o to s.
func (s *ErrorStats) Merge(o ErrorStats) {
	s.Count += o.Count
	s.NonFinite += o.NonFinite
	s.Overflow += o.Overflow
	s.sumSqErr += o.sumSqErr
	s.sumSq += o.sumSq
	s.MaxAbs = math.Max(s.MaxAbs, o.MaxAbs)
	s.finish()
}

func (s *ErrorStats) finish() {
	if s.sumSq > 0 {
		s.RelRMS = math.Sqrt(s.sumSqErr / s.sumSq)
	} else {
		s.RelRMS = 0
	}
}

// Convert converts src into dst (as FromFloat32s) and returns the error stats
// of the conversion. It is the hot loop of staging: one pass, no allocation,
// integer tests for the rare non-finite and overflow cases.
func Convert(dst []uint16, src []float32) ErrorStats {
	dst = dst[:len(src)]
	var s ErrorStats
	var maxAbs, sumSqErr, sumSq float64
	for i, x := range src {
		b := math.Float32bits(x)
		r := b + 0x7fff + (b>>16)&1
		h := uint16(r >> 16)
		if b&0x7f800000 == 0x7f800000 || h&0x7f80 == 0x7f80 {
			h = FromFloat32(x) // NaN needs its quiet bit; both are counted apart
			dst[i] = h
			if b&0x7f800000 == 0x7f800000 {
				s.NonFinite++
			} else {
				s.Overflow++
			}
			continue
		}
		dst[i] = h
		fx := float64(x)
		d := fx - float64(math.Float32frombits(r&0xffff0000))
		sumSqErr += d * d
		sumSq += fx * fx
		if a := math.Abs(d); a > maxAbs {
			maxAbs = a
		}
	}
	s.Count = int64(len(src)) - s.NonFinite - s.Overflow
	s.MaxAbs, s.sumSqErr, s.sumSq = maxAbs, sumSqErr, sumSq
	s.finish()
	return s
}
