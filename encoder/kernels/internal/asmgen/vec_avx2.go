// vec_avx2_amd64.s: the AVX2 row operations: whole 8-lane blocks; the Go
// wrappers finish the tails with the portable twins.

package main

// expConstsAVX2 loads the exp constants into Y6..Y15.
func (g *gen) expConstsAVX2() {
	for i, n := range []string{"log2e", "negLn2Hi", "negLn2Lo", "c6", "c5", "c4", "c3", "c2", "one", "expLoAVX2"} {
		g.f("VBROADCASTSS %s<>(SB), Y%d", n, 6+i)
	}
}

// expAVX2 replaces Yx by exp(Yx) like exp, for inputs clamped at −87.3 (so
// 2ⁿ stays normal and is built in the exponent bits), using Yt and Yn. With
// a mask register (≥ 0), lanes below the clamp become 0 instead of 1.2e−38.
func (g *gen) expAVX2(x, t, n, mask int) {
	if mask >= 0 {
		g.f("VCMPPS $0x1d, Y15, Y%d, Y%d", x, mask) // x ≥ −87.3
	}
	g.f("VMAXPS Y15, Y%d, Y%d", x, x)
	g.f("VMULPS Y6, Y%d, Y%d", x, n)
	g.f("VROUNDPS $0, Y%d, Y%d", n, n)
	g.f("VFMADD231PS Y7, Y%d, Y%d", n, x)
	g.f("VFMADD231PS Y8, Y%d, Y%d", n, x)
	g.f("VMOVAPS Y9, Y%d", t)
	for c := 10; c <= 14; c++ {
		g.f("VFMADD213PS Y%d, Y%d, Y%d", c, x, t)
	}
	g.f("VFMADD213PS Y14, Y%d, Y%d", x, t)
	g.f("VCVTPS2DQ Y%d, Y%d", n, n)
	g.f("VPSLLD $23, Y%d, Y%d", n, n)
	g.f("VPADDD Y%d, Y%d, Y%d", n, t, x)
	if mask >= 0 {
		g.f("VANDPS Y%d, Y%d, Y%d", mask, x, x)
	}
}

// loop8 runs body over CX/8 blocks of 8 floats, advancing SI and DI.
func (g *gen) loop8(name string, body func()) {
	g.f("SHRQ $3, CX")
	g.f("JZ %sdone", name)
	g.label(name + "loop")
	body()
	g.f("ADDQ $32, SI")
	g.f("ADDQ $32, DI")
	g.f("DECQ CX")
	g.f("JNZ %sloop", name)
	g.label(name + "done")
}

// hreduceAVX2 folds the 8 lanes of Yz with op into lane 0 of Xz, using Yt.
func (g *gen) hreduceAVX2(op string, z, t int) {
	g.f("VEXTRACTF128 $1, Y%d, X%d", z, t)
	g.f("%s X%d, X%d, X%d", op, t, z, z)
	g.f("VPERMILPS $0x4e, X%d, X%d", z, t)
	g.f("%s X%d, X%d, X%d", op, t, z, z)
	g.f("VPERMILPS $0xb1, X%d, X%d", z, t)
	g.f("%s X%d, X%d, X%d", op, t, z, z)
}

func genVecAVX2() []byte {
	g := &gen{}
	g.raw(header + "\n")
	g.constData() // <> symbols are local to their file
	g.raw("DATA expLoAVX2<>+0(SB)/4, $" + floatBits("-87.3") + "\nGLOBL expLoAVX2<>(SB), RODATA|NOPTR, $4")
	g.raw(`
// func geluAVX2(dst, src *float32, n int)
// GELU of the n&^7 first values, the formula of geluF32AVX512.
TEXT ·geluAVX2(SB), NOSPLIT, $0-24`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.expConstsAVX2()
	g.loop8("gelu", func() {
		g.f("VMOVUPS (SI), Y0")
		g.f("VBROADCASTSS absMask<>(SB), Y1")
		g.f("VANDPS Y1, Y0, Y1")
		g.f("VBROADCASTSS rsqrt2<>(SB), Y2")
		g.f("VMULPS Y2, Y1, Y1") // z
		g.f("VBROADCASTSS half<>(SB), Y2")
		g.f("VMOVAPS Y14, Y5")
		g.f("VFMADD231PS Y2, Y1, Y5") // d = 1 + z/2
		g.f("VDIVPS Y5, Y14, Y2")     // t
		g.f("VBROADCASTSS nr9<>(SB), Y3")
		for c := 8; c >= 0; c-- {
			g.f("VBROADCASTSS nr%d<>(SB), Y5", c)
			g.f("VFMADD213PS Y5, Y2, Y3")
		}
		g.f("VFNMADD231PS Y1, Y1, Y3") // P(t) − z²
		g.expAVX2(3, 4, 5, -1)
		g.f("VMULPS Y2, Y3, Y3") // erfc(z)
		g.f("VBROADCASTSS half<>(SB), Y5")
		g.f("VMULPS Y5, Y3, Y3")  // h = Φ(−|x|)
		g.f("VSUBPS Y3, Y14, Y4") // 1 − h
		g.f("VXORPS Y5, Y5, Y5")
		g.f("VCMPPS $0x1e, Y5, Y0, Y5") // x > 0
		g.f("VBLENDVPS Y5, Y4, Y3, Y3") // Φ(x)
		g.f("VMULPS Y3, Y0, Y0")
		g.f("VMOVUPS Y0, (DI)")
	})
	g.f("VZEROUPPER")
	g.f("RET")

	g.raw(`
// func exp2AVX2(dst, src *float32, n int, mul, add float32) (sum float32)
// dst[i] = 2^(src[i]·mul + add) for the n&^7 first values, with the degree-6
// polynomial of exp2F32Coef, 0 where the exponent is below −126; returns the sum.
TEXT ·exp2AVX2(SB), NOSPLIT, $0-36`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.f("VBROADCASTSS mul+24(FP), Y6")
	g.f("VBROADCASTSS add+28(FP), Y7")
	for i, c := range exp2Coefs(false) {
		g.f("VBROADCASTSS %s<>(SB), Y%d", c, 8+i)
	}
	g.f("VBROADCASTSS exp2Lo<>(SB), Y15")
	g.f("VXORPS Y0, Y0, Y0")
	g.loop8("exp2", func() {
		g.f("VMOVAPS Y7, Y2")
		g.f("VFMADD231PS (SI), Y6, Y2")  // t
		g.f("VCMPPS $0x1d, Y15, Y2, Y5") // t ≥ −126
		g.f("VMAXPS Y15, Y2, Y2")
		g.f("VROUNDPS $0, Y2, Y3") // n
		g.f("VSUBPS Y3, Y2, Y2")   // r
		g.f("VMOVAPS Y8, Y4")
		for c := 9; c <= 14; c++ {
			g.f("VFMADD213PS Y%d, Y2, Y4", c)
		}
		g.f("VCVTPS2DQ Y3, Y3")
		g.f("VPSLLD $23, Y3, Y3")
		g.f("VPADDD Y3, Y4, Y4")
		g.f("VANDPS Y5, Y4, Y4")
		g.f("VMOVUPS Y4, (DI)")
		g.f("VADDPS Y4, Y0, Y0")
	})
	g.hreduceAVX2("VADDPS", 0, 3)
	g.f("VMOVSS X0, sum+32(FP)")
	g.f("VZEROUPPER")
	g.f("RET")

	g.raw(`
// func maxAVX2(src *float32, n int) float32
// The maximum of the n&^7 first values (n ≥ 8), two accumulators of 8 lanes
// (NaNs are not propagated: scores are finite).
TEXT ·maxAVX2(SB), NOSPLIT, $0-20`)
	g.f("MOVQ src+0(FP), SI")
	g.f("MOVQ n+8(FP), CX")
	g.f("VMOVUPS (SI), Y0")
	g.f("VMOVAPS Y0, Y1")
	g.f("SHRQ $3, CX")
	g.f("TESTQ $1, CX")
	g.f("JZ maxpairs")
	g.f("ADDQ $32, SI")
	g.f("DECQ CX")
	g.label("maxpairs")
	g.f("SHRQ $1, CX")
	g.f("JZ maxdone")
	g.label("maxloop")
	g.f("VMAXPS (SI), Y0, Y0")
	g.f("VMAXPS 32(SI), Y1, Y1")
	g.f("ADDQ $64, SI")
	g.f("DECQ CX")
	g.f("JNZ maxloop")
	g.label("maxdone")
	g.f("VMAXPS Y1, Y0, Y0")
	g.hreduceAVX2("VMAXPS", 0, 3)
	g.f("VMOVSS X0, ret+16(FP)")
	g.f("VZEROUPPER")
	g.f("RET")

	g.raw(`
// func addBF16AVX2(dst *float32, src *uint16, n int)
// dst[i] += float32(src[i]) for the n&^7 first values.
TEXT ·addBF16AVX2(SB), NOSPLIT, $0-24`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.f("SHRQ $3, CX")
	g.f("JZ adddone")
	g.label("addloop")
	g.f("VPMOVZXWD (SI), Y0")
	g.f("VPSLLD $16, Y0, Y0")
	g.f("VADDPS (DI), Y0, Y0")
	g.f("VMOVUPS Y0, (DI)")
	g.f("ADDQ $16, SI")
	g.f("ADDQ $32, DI")
	g.f("DECQ CX")
	g.f("JNZ addloop")
	g.label("adddone")
	g.f("VZEROUPPER")
	g.f("RET")

	g.raw(`
// func scaleAVX2(dst, src *float32, n int, s float32)
// dst[i] = src[i]·s for the n&^7 first values.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-28`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.f("VBROADCASTSS s+24(FP), Y1")
	g.loop8("scale", func() {
		g.f("VMULPS (SI), Y1, Y0")
		g.f("VMOVUPS Y0, (DI)")
	})
	g.f("VZEROUPPER")
	g.f("RET")

	g.raw(`
// func layerNormAVX2(dst, src *float32, n int, gamma, beta *float32, invN, eps float32)
// layerNormAVX512 with 8 lanes; n a positive multiple of 8.
TEXT ·layerNormAVX2(SB), NOSPLIT, $0-48`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.f("MOVQ gamma+24(FP), R8")
	g.f("MOVQ beta+32(FP), R9")
	g.f("SHRQ $3, CX")
	pass := func(name string, body func()) {
		g.f("XORQ BX, BX")
		g.f("MOVQ CX, DX")
		g.label(name)
		body()
		g.f("ADDQ $32, BX")
		g.f("DECQ DX")
		g.f("JNZ %s", name)
	}
	g.f("VXORPS Y0, Y0, Y0")
	pass("sum", func() { g.f("VADDPS (SI)(BX*1), Y0, Y0") })
	g.hreduceAVX2("VADDPS", 0, 3)
	g.f("VMULSS invN+40(FP), X0, X0")
	g.f("VBROADCASTSS X0, Y1")
	g.f("VXORPS Y2, Y2, Y2")
	pass("var", func() {
		g.f("VMOVUPS (SI)(BX*1), Y3")
		g.f("VSUBPS Y1, Y3, Y3")
		g.f("VFMADD231PS Y3, Y3, Y2")
	})
	g.hreduceAVX2("VADDPS", 2, 3)
	g.f("VMULSS invN+40(FP), X2, X2")
	g.f("VADDSS eps+44(FP), X2, X2")
	g.f("VSQRTSS X2, X2, X2")
	g.f("VMOVSS one<>(SB), X4")
	g.f("VDIVSS X2, X4, X4")
	g.f("VBROADCASTSS X4, Y4")
	pass("norm", func() {
		g.f("VMOVUPS (SI)(BX*1), Y3")
		g.f("VSUBPS Y1, Y3, Y3")
		g.f("VMULPS Y4, Y3, Y3")
		g.f("VMULPS (R8)(BX*1), Y3, Y3")
		g.f("VADDPS (R9)(BX*1), Y3, Y3")
		g.f("VMOVUPS Y3, (DI)(BX*1)")
	})
	g.f("VZEROUPPER")
	g.f("RET")
	return g.b.Bytes()
}
