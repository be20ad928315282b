// vec_amd64.s: the AVX-512 row operations.

package main

import (
	"fmt"
	"math"
)

// consts are the float32 constants of the row operations, by DATA name.
var consts = []struct {
	name string
	val  string // hex bits or a float literal the assembler accepts as $(...)
}{
	{"negInf", "0xff800000"}, {"expLo", "$-100.0"}, {"log2e", "$1.4426950408889634"},
	{"negLn2Hi", "$-0.693359375"}, {"negLn2Lo", "$2.12194440e-4"},
	{"c6", "$1.3888888888888889e-3"}, {"c5", "$8.3333333333333333e-3"}, {"c4", "$4.1666666666666667e-2"},
	{"c3", "$1.6666666666666667e-1"}, {"c2", "$0.5"}, {"one", "$1.0"}, {"half", "$0.5"},
	{"absMask", "0x7fffffff"}, {"rsqrt2", "$0.70710678118654752"},
	// Numerical Recipes erfc: erfc(z) = t·exp(−z² + P(t)), t = 1/(1+z/2).
	{"nr0", "$-1.26551223"}, {"nr1", "$1.00002368"}, {"nr2", "$0.37409196"}, {"nr3", "$0.09678418"},
	{"nr4", "$-0.18628806"}, {"nr5", "$0.27886807"}, {"nr6", "$-1.13520398"}, {"nr7", "$1.48851587"},
	{"nr8", "$-0.82215223"}, {"nr9", "$0.17087277"},
	// exp2 polynomials of attn.go (exp2BF16Coef, exp2F32Coef), highest degree first.
	{"e2b0", "$0.00957010128"}, {"e2b1", "$0.0559178591"}, {"e2b2", "$0.240247443"}, {"e2b3", "$0.693121791"}, {"e2b4", "$0.999999285"},
	{"e2f0", "$0.000153458182"}, {"e2f1", "$0.00133999309"}, {"e2f2", "$0.00961848907"}, {"e2f3", "$0.0555032864"},
	{"e2f4", "$0.240226462"}, {"e2f5", "$0.693147182"}, {"e2f6", "$1.0"},
	{"negLog2e", "$-1.4426950408889634"}, {"alphaMin", "$-200.0"}, {"exp2Lo", "$-126.0"},
	// bf16 GELU (geluBF16 in vec.go): Abramowitz–Stegun 7.1.26 erfc with the
	// ½ of Φ folded into its coefficients, t = 1/(1 + p·|x|/√2).
	{"asP", "$0.23164189952"}, {"as0", "$0.127414796"}, {"as1", "$-0.142248368"}, {"as2", "$0.7107068705"},
	{"as3", "$-0.7265760135"}, {"as4", "$0.5307027145"}, {"negHalfLog2e", "$-0.7213475204444817"},
}

func (g *gen) constData() {
	for _, c := range consts {
		v := c.val
		if v[0] != '$' {
			v = "$" + v
		} else {
			v = "$(" + v[1:] + ")"
		}
		if c.val[0] == '$' {
			g.raw(fmt.Sprintf("DATA %s<>+0(SB)/4, $%s", c.name, floatBits(c.val[1:])))
		} else {
			g.raw(fmt.Sprintf("DATA %s<>+0(SB)/4, %s", c.name, v))
		}
		g.raw(fmt.Sprintf("GLOBL %s<>(SB), RODATA|NOPTR, $4", c.name))
	}
}

// floatBits renders a decimal float32 as hex bits (the assembler's float
// DATA form needs 8 bytes, so the constants are stored as integers).
func floatBits(s string) string {
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		panic(err)
	}
	return fmt.Sprintf("0x%08x", math.Float32bits(float32(f)))
}

// Register plan of the row operations: exp uses Z16..Z24 for constants.
func (g *gen) expConsts() {
	for i, n := range []string{"log2e", "negLn2Hi", "negLn2Lo", "c6", "c5", "c4", "c3", "c2", "one", "expLo"} {
		g.f("VBROADCASTSS %s<>(SB), Z%d", n, 16+i)
	}
}

// exp replaces Zx by exp(Zx) (inputs below −100 are clamped: the result is
// then < 4e−44), using Zt and Zn as temporaries: n = round(x·log2e),
// r = x − n·ln2 (Cody–Waite), exp(r) by its degree-6 Taylor polynomial
// (|r| ≤ ln2/2: relative error < 1.3e−7), scaled by 2ⁿ with VSCALEFPS.
func (g *gen) exp(x, t, n int) {
	g.f("VMAXPS Z25, Z%d, Z%d", x, x)
	g.f("VMULPS Z16, Z%d, Z%d", x, n)
	g.f("VRNDSCALEPS $0, Z%d, Z%d", n, n)
	g.f("VFMADD231PS Z17, Z%d, Z%d", n, x)
	g.f("VFMADD231PS Z18, Z%d, Z%d", n, x)
	g.f("VMOVAPS Z19, Z%d", t)
	for c := 20; c <= 24; c++ {
		g.f("VFMADD213PS Z%d, Z%d, Z%d", c, x, t)
	}
	g.f("VFMADD213PS Z24, Z%d, Z%d", x, t)
	g.f("VSCALEFPS Z%d, Z%d, Z%d", n, t, x)
}

// hreduce folds the 16 lanes of Zz with op (VADDPS or VMAXPS) into lane 0
// of Xz, using Zt.
func (g *gen) hreduce(op string, z, t int) {
	g.f("VEXTRACTF32X8 $1, Z%d, Y%d", z, t)
	g.f("%s Y%d, Y%d, Y%d", op, t, z, z)
	g.f("VEXTRACTF128 $1, Y%d, X%d", z, t)
	g.f("%s X%d, X%d, X%d", op, t, z, z)
	g.f("VPERMILPS $0x4e, X%d, X%d", z, t)
	g.f("%s X%d, X%d, X%d", op, t, z, z)
	g.f("VPERMILPS $0xb1, X%d, X%d", z, t)
	g.f("%s X%d, X%d, X%d", op, t, z, z)
}

// blocks splits n (in CX) into DX blocks of 16 and a tail mask K1 of CX&15 lanes.
func (g *gen) blocks() {
	g.f("MOVQ CX, DX")
	g.f("SHRQ $4, DX")
	g.f("ANDQ $15, CX")
	g.f("MOVQ $1, AX")
	g.f("SHLQ CX, AX")
	g.f("DECQ AX")
	g.f("KMOVW AX, K1")
}

// rowLoop emits the 16-lane loop over DX blocks and the masked tail, with
// body(tail) producing one block; pointers listed advance by their step.
func (g *gen) rowLoop(name string, steps map[string]int, body func(tail bool)) {
	g.f("TESTQ DX, DX")
	g.f("JZ %stail", name)
	g.label(name + "loop")
	body(false)
	for _, r := range []string{"SI", "DI"} {
		if s, ok := steps[r]; ok {
			g.f("ADDQ $%d, %s", s, r)
		}
	}
	g.f("DECQ DX")
	g.f("JNZ %sloop", name)
	g.label(name + "tail")
	g.f("TESTQ CX, CX")
	g.f("JZ %sdone", name)
	body(true)
	g.label(name + "done")
}

// load16 loads 16 floats (or the K1 lanes, the others set from fill) into Zz.
func (g *gen) load16(z int, addr string, tail bool, fill string) {
	if !tail {
		g.f("VMOVUPS %s, Z%d", addr, z)
		return
	}
	if fill == "" {
		g.f("VMOVUPS.Z %s, K1, Z%d", addr, z)
		return
	}
	g.f("VBROADCASTSS %s<>(SB), Z%d", fill, z)
	g.f("VMOVUPS %s, K1, Z%d", addr, z)
}

// storeOut writes Zz to (DI) as float32 or, when bf16, as bf16 through Yw;
// it returns after leaving the rounded values widened back in Zw when bf16.
func (g *gen) storeOut(z, w int, bf16, tail bool) {
	if !bf16 {
		if tail {
			g.f("VMOVUPS Z%d, K1, (DI)", z)
		} else {
			g.f("VMOVUPS Z%d, (DI)", z)
		}
		return
	}
	g.raw("\t" + vcvtneps2bf16(w, z))
	if tail {
		g.f("VMOVDQU16 Y%d, K1, (DI)", w)
	} else {
		g.f("VMOVDQU Y%d, (DI)", w)
	}
}

// geluBF16 writes geluBF16AVX512, the bf16-output GELU: x·Φ(x) with
// Φ(−|x|) = ½·erfc(|x|/√2) from Abramowitz–Stegun 7.1.26 (absolute error
// ≤ 1.5e−7), t = 1/(1 + p·|x|/√2) by VRCP14PS and a Newton step, e^(−x²/2)
// by the bf16 exp2: about a third of the float32 form's work, for results
// rounded to 8 bits. Two vectors a step, converted with one VCVTNE2PS2BF16.
// Registers: Z16 = p/√2, Z17 = 1, Z18…Z22 the erfc coefficients, Z23 =
// −log₂e/2, Z24…Z28 the exp2 coefficients, Z29 = 0, Z30 = the abs mask.
func (g *gen) geluBF16() {
	g.raw(`
// func geluBF16AVX512(dst *uint16, src *float32, n int)
// dst[i] = bf16(x·Φ(x)), x = src[i], to bf16 precision; see geluBF16.
TEXT ·geluBF16AVX512(SB), NOSPLIT, $0-24`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	for i, c := range []string{"asP", "one", "as4", "as3", "as2", "as1", "as0", "negHalfLog2e"} {
		g.f("VBROADCASTSS %s<>(SB), Z%d", c, 16+i)
	}
	for i, c := range exp2Coefs(true) {
		g.f("VBROADCASTSS %s<>(SB), Z%d", c, 24+i)
	}
	g.f("VPXORD Z29, Z29, Z29")
	g.f("VPBROADCASTD absMask<>(SB), Z30")
	g.tailMask("DX", "K1")
	// one computes GELU of Zx in place, with temporaries Zb…Zb+6.
	one := func(x, b int) {
		a, d, t, e, p, n, q := b, b+1, b+2, b+3, b+4, b+5, b+6
		g.f("VPANDD Z30, Z%d, Z%d", x, a)
		g.f("VMOVAPS Z17, Z%d", d)
		g.f("VFMADD231PS Z16, Z%d, Z%d", a, d) // d = 1 + p·|x|/√2
		g.f("VRCP14PS Z%d, Z%d", d, t)
		g.f("VMOVAPS Z17, Z%d", e)
		g.f("VFNMADD231PS Z%d, Z%d, Z%d", t, d, e) // e = 1 − d·t
		g.f("VFMADD231PS Z%d, Z%d, Z%d", e, t, t)  // t += t·e
		g.f("VMOVAPS Z18, Z%d", p)
		for c := 19; c <= 22; c++ {
			g.f("VFMADD213PS Z%d, Z%d, Z%d", c, t, p)
		}
		g.f("VMULPS Z%d, Z%d, Z%d", t, p, p)  // ½·erfc(z)/e^(−z²)
		g.f("VMULPS Z%d, Z%d, Z%d", x, x, e)  // x²
		g.f("VMULPS Z23, Z%d, Z%d", e, e)     // −x²·log₂e/2
		g.exp2(e, n, q, 24, 5)                // e^(−x²/2)
		g.f("VMULPS Z%d, Z%d, Z%d", q, p, p)  // h = Φ(−|x|)
		g.f("VCMPPS $0x1e, Z29, Z%d, K2", x)  // x > 0
		g.f("VSUBPS Z%d, Z17, K2, Z%d", p, p) // Φ(x) = 1 − h where x > 0
		g.f("VMULPS Z%d, Z%d, Z%d", p, x, x)
	}
	g.f("MOVQ DX, CX")
	g.f("SHRQ $1, CX")
	g.f("JZ gelu16")
	g.label("gelu32")
	g.f("VMOVUPS (SI), Z0")
	g.f("VMOVUPS 64(SI), Z8")
	one(0, 1)
	one(8, 9)
	g.raw("\t" + vcvtne2ps2bf16(15, 8, 0))
	g.f("VMOVDQU32 Z15, (DI)")
	g.f("ADDQ $128, SI")
	g.f("ADDQ $64, DI")
	g.f("DECQ CX")
	g.f("JNZ gelu32")
	g.label("gelu16")
	g.f("TESTQ $1, DX")
	g.f("JZ gelutail")
	g.f("VMOVUPS (SI), Z0")
	one(0, 1)
	g.storeTo(0, 15, true, false, "(DI)")
	g.f("ADDQ $64, SI")
	g.f("ADDQ $32, DI")
	g.label("gelutail")
	g.f("MOVQ n+16(FP), CX")
	g.f("ANDQ $15, CX")
	g.f("JZ geludone")
	g.f("VMOVUPS.Z (SI), K1, Z0")
	one(0, 1)
	g.storeTo(0, 15, true, true, "(DI)")
	g.label("geludone")
	g.f("VZEROUPPER")
	g.f("RET")
}

// gelu writes geluF32AVX512, the float32 GELU.
func (g *gen) gelu() {
	g.raw(`
// func geluF32AVX512(dst *float32, src *float32, n int)
// dst[i] = x·Φ(x), x = src[i], with Φ(x) = erfc(−x/√2)/2 from the Numerical
// Recipes erfc (relative error < 1.2e−7). dst may alias src.
TEXT ·geluF32AVX512(SB), NOSPLIT, $0-24`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.blocks()
	const one = 24 // register holding 1.0 in the exp constant set
	g.expConsts()
	g.f("VPXORD Z29, Z29, Z29")
	g.rowLoop("gelu", map[string]int{"SI": 64, "DI": 64}, func(tail bool) {
		g.load16(0, "(SI)", tail, "")
		g.f("VPANDD.BCST absMask<>(SB), Z0, Z1")   // |x|
		g.f("VMULPS.BCST rsqrt2<>(SB), Z1, Z1")    // z = |x|/√2
		g.f("VMOVAPS Z%d, Z2", one)                // 1
		g.f("VFMADD231PS.BCST half<>(SB), Z1, Z2") // d = 1 + z/2
		g.f("VRCP14PS Z2, Z6")                     // t ≈ 1/d (2⁻¹⁴)
		g.f("VMOVAPS Z%d, Z5", one)
		g.f("VFNMADD231PS Z6, Z2, Z5") // e = 1 − d·t
		g.f("VFMADD231PS Z5, Z6, Z6")  // t += t·e (Newton: 2⁻²⁸)
		g.f("VMOVAPS Z6, Z2")
		g.f("VBROADCASTSS nr9<>(SB), Z3")
		for c := 8; c >= 0; c-- {
			g.f("VFMADD213PS.BCST nr%d<>(SB), Z2, Z3", c)
		}
		g.f("VFNMADD231PS Z1, Z1, Z3") // P(t) − z²
		g.exp(3, 4, 5)
		g.f("VMULPS Z2, Z3, Z3")              // erfc(z)
		g.f("VMULPS.BCST half<>(SB), Z3, Z3") // h = erfc(z)/2 = Φ(−|x|)
		g.f("VCMPPS $0x1e, Z29, Z0, K2")      // x > 0
		g.f("VSUBPS Z3, Z%d, K2, Z3", one)    // Φ(x) = 1 − h where x > 0
		g.f("VMULPS Z3, Z0, Z0")
		g.storeOut(0, 5, false, tail)
	})
	g.f("VZEROUPPER")
	g.f("RET")
}

func (g *gen) scale(bf16 bool) {
	name, dst := "scaleF32AVX512", "*float32"
	out := 4
	if bf16 {
		name, dst, out = "scaleBF16AVX512", "*uint16", 2
	}
	g.raw(fmt.Sprintf(`
// func %s(dst %s, src *float32, n int, s float32)
// dst[i] = src[i]·s.
TEXT ·%s(SB), NOSPLIT, $0-28`, name, dst, name))
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.f("VBROADCASTSS s+24(FP), Z1")
	g.blocks()
	g.rowLoop("scale", map[string]int{"SI": 64, "DI": 16 * out}, func(tail bool) {
		g.load16(0, "(SI)", tail, "")
		g.f("VMULPS Z1, Z0, Z0")
		g.storeOut(0, 5, bf16, tail)
	})
	g.f("VZEROUPPER")
	g.f("RET")
}

func (g *gen) layerNorm() {
	g.raw(`
// func layerNormAVX512(dst, src *float32, n int, gamma, beta *float32, invN, eps float32)
// One row: mean, variance of (x − mean), then (x − mean)/√(var + eps)·gamma + beta.
// n must be a positive multiple of 16; dst may alias src.
TEXT ·layerNormAVX512(SB), NOSPLIT, $0-48`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.f("MOVQ gamma+24(FP), R8")
	g.f("MOVQ beta+32(FP), R9")
	g.f("SHRQ $4, CX")
	pass := func(name string, body func()) {
		g.f("XORQ BX, BX")
		g.f("MOVQ CX, DX")
		g.label(name)
		body()
		g.f("ADDQ $64, BX")
		g.f("DECQ DX")
		g.f("JNZ %s", name)
	}
	g.f("VPXORD Z0, Z0, Z0")
	pass("sum", func() { g.f("VADDPS (SI)(BX*1), Z0, Z0") })
	g.hreduce("VADDPS", 0, 3)
	g.f("VMULSS invN+40(FP), X0, X0")
	g.f("VBROADCASTSS X0, Z1") // mean
	g.f("VPXORD Z2, Z2, Z2")
	pass("var", func() {
		g.f("VMOVUPS (SI)(BX*1), Z3")
		g.f("VSUBPS Z1, Z3, Z3")
		g.f("VFMADD231PS Z3, Z3, Z2")
	})
	g.hreduce("VADDPS", 2, 3)
	g.f("VMULSS invN+40(FP), X2, X2")
	g.f("VADDSS eps+44(FP), X2, X2")
	g.f("VSQRTSS X2, X2, X2")
	g.f("VMOVSS one<>(SB), X4")
	g.f("VDIVSS X2, X4, X4")
	g.f("VBROADCASTSS X4, Z4") // 1/σ
	pass("norm", func() {
		g.f("VMOVUPS (SI)(BX*1), Z3")
		g.f("VSUBPS Z1, Z3, Z3")
		g.f("VMULPS Z4, Z3, Z3")
		g.f("VMULPS (R8)(BX*1), Z3, Z3")
		g.f("VADDPS (R9)(BX*1), Z3, Z3")
		g.f("VMOVUPS Z3, (DI)(BX*1)")
	})
	g.f("VZEROUPPER")
	g.f("RET")
}

func genVec() []byte {
	g := &gen{}
	g.raw(header + "\n")
	g.constData()
	g.geluBF16()
	g.gelu()
	g.scale(true)
	g.scale(false)
	g.layerNorm()
	g.softmaxBlock(true)
	g.softmaxBlock(false)
	g.scaleRows(true)
	g.scaleRows(false)
	g.addBF16()
	g.pairs()
	g.scatterPairs()
	return g.b.Bytes()
}

// pairs writes pairsBF16AVX512: dst[i] = bf16(a[i]) | bf16(b[i])<<16, the
// k-pair words of two consecutive columns of a packed B. VCVTNE2PS2BF16
// puts a's 16 words below b's, VPERMW interleaves them.
func (g *gen) pairs() {
	g.raw(`
// func pairsBF16AVX512(dst *uint32, a, b *float32, n int)
// dst[i] = bf16(a[i]) | bf16(b[i])<<16 for i < n.
TEXT ·pairsBF16AVX512(SB), NOSPLIT, $0-32`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ a+8(FP), SI")
	g.f("MOVQ b+16(FP), BX")
	g.f("MOVQ n+24(FP), CX")
	g.f("VMOVDQU32 interleave<>(SB), Z4")
	g.tailMask("DX", "K1")
	g.f("TESTQ DX, DX")
	g.f("JZ pairstail")
	g.label("pairsloop")
	g.f("VMOVUPS (SI), Z0")
	g.f("VMOVUPS (BX), Z1")
	g.raw("\t" + vcvtne2ps2bf16(2, 1, 0))
	g.f("VPERMW Z2, Z4, Z3")
	g.f("VMOVDQU32 Z3, (DI)")
	g.f("ADDQ $64, SI")
	g.f("ADDQ $64, BX")
	g.f("ADDQ $64, DI")
	g.f("DECQ DX")
	g.f("JNZ pairsloop")
	g.label("pairstail")
	g.f("MOVQ n+24(FP), CX")
	g.f("ANDQ $15, CX")
	g.f("JZ pairsdone")
	g.f("VMOVUPS.Z (SI), K1, Z0")
	g.f("VMOVUPS.Z (BX), K1, Z1")
	g.raw("\t" + vcvtne2ps2bf16(2, 1, 0))
	g.f("VPERMW Z2, Z4, Z3")
	g.f("VMOVDQU32 Z3, K1, (DI)")
	g.label("pairsdone")
	g.f("VZEROUPPER")
	g.f("RET")
	// Word 2k takes a's word k, word 2k+1 b's (word 16+k).
	for i := 0; i < 32; i += 2 {
		g.raw(fmt.Sprintf("DATA interleave<>+%d(SB)/4, $0x%04x%04x", 2*i, 16+i/2, i/2))
	}
	g.raw("GLOBL interleave<>(SB), RODATA|NOPTR, $64")
}

// scatterPairs writes scatterPairsBF16AVX512: the k-pair words of one row
// of a packed B, 32 words (one per panel column) apart.
func (g *gen) scatterPairs() {
	g.raw(`
// func scatterPairsBF16AVX512(dst *uint32, src *float32, pairs int)
// dst[32q] = bf16(src[2q]) | bf16(src[2q+1])<<16 for q < pairs.
TEXT ·scatterPairsBF16AVX512(SB), NOSPLIT, $0-24`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ pairs+16(FP), CX")
	g.f("VMOVDQU32 stride32<>(SB), Z4")
	g.tailMask("DX", "K1")
	g.f("TESTQ DX, DX")
	g.f("JZ scattail")
	g.label("scatloop")
	g.f("VMOVUPS (SI), Z0")
	g.f("VMOVUPS 64(SI), Z1")
	g.raw("\t" + vcvtne2ps2bf16(2, 1, 0))
	g.f("KXNORW K2, K2, K2")
	g.f("VPSCATTERDD Z2, K2, (DI)(Z4*4)")
	g.f("ADDQ $128, SI")
	g.f("ADDQ $2048, DI")
	g.f("DECQ DX")
	g.f("JNZ scatloop")
	g.label("scattail")
	g.f("MOVQ pairs+16(FP), CX")
	g.f("ANDQ $15, CX")
	g.f("JZ scatdone")
	// The tail's pairs are the first 2·(pairs%16) floats: split the mask
	// over the two source vectors.
	g.f("SHLQ $1, CX")
	g.f("MOVQ $1, AX")
	g.f("SHLQ CX, AX")
	g.f("DECQ AX")
	g.f("KMOVW AX, K3")
	g.f("SHRQ $16, AX")
	g.f("KMOVW AX, K4")
	g.f("VMOVUPS.Z (SI), K3, Z0")
	g.f("VMOVUPS.Z 64(SI), K4, Z1")
	g.raw("\t" + vcvtne2ps2bf16(2, 1, 0))
	g.f("KMOVW K1, K2")
	g.f("VPSCATTERDD Z2, K2, (DI)(Z4*4)")
	g.label("scatdone")
	g.f("VZEROUPPER")
	g.f("RET")
	for i := 0; i < 16; i++ {
		g.raw(fmt.Sprintf("DATA stride32<>+%d(SB)/4, $%d", 4*i, 32*i))
	}
	g.raw("GLOBL stride32<>(SB), RODATA|NOPTR, $64")
}
