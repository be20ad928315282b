// vec_amd64.s, continued: the flash-attention row operations (attn.go).

package main

import (
	"fmt"
)

// exp2Coefs names the polynomial coefficients of the bf16 or float32 exp2.
func exp2Coefs(bf16 bool) []string {
	if bf16 {
		return []string{"e2b0", "e2b1", "e2b2", "e2b3", "e2b4"}
	}
	return []string{"e2f0", "e2f1", "e2f2", "e2f3", "e2f4", "e2f5", "e2f6"}
}

// exp2 writes 2^Zt into Zp, with Zn a temporary and Zt clobbered (it ends
// as r): n = round(t), r = t − n, 2^r by Horner's rule on the coefficients
// held in Z(coef)…, scaled by 2ⁿ with VSCALEFPS (which underflows to 0).
func (g *gen) exp2(t, n, p, coef, ncoef int) {
	g.f("VRNDSCALEPS $0, Z%d, Z%d", t, n)
	g.f("VSUBPS Z%d, Z%d, Z%d", n, t, t)
	g.f("VMOVAPS Z%d, Z%d", coef, p)
	for c := coef + 1; c < coef+ncoef; c++ {
		g.f("VFMADD213PS Z%d, Z%d, Z%d", c, t, p)
	}
	g.f("VSCALEFPS Z%d, Z%d, Z%d", n, p, p)
}

// tailMask splits the count in CX into a block count in reg (CX>>4) and a
// mask of the CX&15 tail lanes in kreg; it clobbers AX and CX.
func (g *gen) tailMask(reg, kreg string) {
	g.f("MOVQ CX, %s", reg)
	g.f("SHRQ $4, %s", reg)
	g.f("ANDQ $15, CX")
	g.f("MOVQ $1, AX")
	g.f("SHLQ CX, AX")
	g.f("DECQ AX")
	g.f("KMOVW AX, %s", kreg)
}

// softmaxBlock writes softmaxBlockBF16AVX512 or softmaxBlockF32AVX512, one
// key block of the online softmax over at most 16 rows (see
// SoftmaxBlockBF16), in two phases that keep the rows' dependency chains
// independent: first every row's block maximum, then m', the rescaling
// factors a and −m'·log₂e of all rows at once as vectors (kept in the
// frame); then per row the exponentials, two vectors a step, the sum and the
// rescaled output row. Registers: Z16 = log₂e, Z17… the exp2 coefficients,
// Z24 = −Inf; per row Z13 = a, Z14 = −m'·log₂e, Z15 and Z6 the sums.
func (g *gen) softmaxBlock(bf16 bool) {
	name, pt, out := "softmaxBlockF32AVX512", "*float32", 4
	if bf16 {
		name, pt, out = "softmaxBlockBF16AVX512", "*uint16", 2
	}
	coefs := exp2Coefs(bf16)
	g.raw(fmt.Sprintf(`
// func %s(p %s, ldp uintptr, s *float32, lds uintptr, rows, n int, m, l, o *float32, ldo uintptr, no int)
// One key block of an online softmax over rows ≤ 16 rows; see attn.go.
TEXT ·%s(SB), NOSPLIT, $192-88`, name, pt, name))
	// Frame: mnew-64(SP) [16], alpha-128(SP) [16], nml-192(SP) [16].
	g.f("VBROADCASTSS log2e<>(SB), Z16")
	for i, c := range coefs {
		g.f("VBROADCASTSS %s<>(SB), Z%d", c, 17+i)
	}
	g.f("VBROADCASTSS negInf<>(SB), Z24")
	g.f("MOVQ n+40(FP), CX")
	g.tailMask("R11", "K1") // R11 = n/16, K1 = the n%16 tail lanes
	g.f("MOVQ no+80(FP), CX")
	g.tailMask("R12", "K2") // R12 = no/16, K2 = its tail
	g.f("MOVQ rows+32(FP), CX")
	g.f("MOVQ $1, AX")
	g.f("SHLQ CX, AX")
	g.f("DECQ AX")
	g.f("KMOVW AX, K3") // the rows lanes

	// Phase 1: block maxima into mnew.
	g.f("MOVQ s+16(FP), SI")
	g.f("LEAQ mnew-64(SP), DI")
	g.f("MOVQ rows+32(FP), R9")
	g.label("maxrow")
	for i := 0; i < 4; i++ {
		g.f("VMOVAPS Z24, Z%d", i)
	}
	g.f("MOVQ R11, DX")
	g.f("MOVQ SI, BX")
	g.f("CMPQ DX, $4")
	g.f("JB max1")
	g.label("max4")
	for i := 0; i < 4; i++ {
		g.f("VMAXPS %d(BX), Z%d, Z%d", 64*i, i, i)
	}
	g.f("ADDQ $256, BX")
	g.f("SUBQ $4, DX")
	g.f("CMPQ DX, $4")
	g.f("JAE max4")
	g.label("max1")
	g.f("TESTQ DX, DX")
	g.f("JZ maxtail")
	g.f("VMAXPS (BX), Z0, Z0")
	g.f("ADDQ $64, BX")
	g.f("DECQ DX")
	g.f("JMP max1")
	g.label("maxtail")
	g.f("VMOVAPS Z24, Z4")
	g.f("VMOVUPS (BX), K1, Z4")
	g.f("VMAXPS Z4, Z0, Z0")
	g.f("VMAXPS Z1, Z0, Z0")
	g.f("VMAXPS Z3, Z2, Z2")
	g.f("VMAXPS Z2, Z0, Z0")
	g.hreduce("VMAXPS", 0, 5)
	g.f("VMOVSS X0, (DI)")
	g.f("ADDQ $4, DI")
	g.f("ADDQ lds+24(FP), SI")
	g.f("DECQ R9")
	g.f("JNZ maxrow")
	// m' = max(m, block max); a = exp2(max((m − m')·log₂e, −200));
	// nml = −m'·log₂e, for all rows at once.
	g.f("MOVQ m+48(FP), R8")
	g.f("VMOVAPS Z24, Z1")
	g.f("VMOVUPS (R8), K3, Z1")
	g.f("VMAXPS mnew-64(SP), Z1, Z2")
	g.f("VMOVUPS Z2, K3, (R8)")
	g.f("VSUBPS Z2, Z1, Z8")
	g.f("VMULPS Z16, Z8, Z8")
	g.f("VMAXPS.BCST alphaMin<>(SB), Z8, Z8")
	g.exp2(8, 9, 10, 17, len(coefs))
	g.f("VMOVUPS Z10, alpha-128(SP)")
	g.f("VMULPS.BCST negLog2e<>(SB), Z2, Z2")
	g.f("VMOVUPS Z2, nml-192(SP)")

	// Phase 2, per row: P = exp2(s·log₂e − m'·log₂e), l = a·l + Σ, O *= a.
	g.f("MOVQ p+0(FP), DI")
	g.f("MOVQ s+16(FP), SI")
	g.f("MOVQ l+56(FP), R9")
	g.f("MOVQ o+64(FP), R10")
	g.f("XORQ R8, R8") // row
	g.label("row")
	g.f("VBROADCASTSS alpha-128(SP)(R8*4), Z13")
	g.f("VBROADCASTSS nml-192(SP)(R8*4), Z14")
	g.f("VPXORD Z15, Z15, Z15")
	g.f("VPXORD Z6, Z6, Z6")
	g.f("MOVQ SI, AX")
	g.f("MOVQ DI, BX")
	g.f("MOVQ R11, DX")
	g.f("SHRQ $1, DX")
	g.f("JZ exp16")
	g.label("exp32")
	g.f("VMOVAPS Z14, Z8")
	g.f("VFMADD231PS (AX), Z16, Z8")
	g.f("VMOVAPS Z14, Z0")
	g.f("VFMADD231PS 64(AX), Z16, Z0")
	g.exp2pair(8, 9, 10, 0, 1, 2, 17, len(coefs))
	g.f("VADDPS Z10, Z15, Z15")
	g.f("VADDPS Z2, Z6, Z6")
	if bf16 {
		g.raw("	" + vcvtne2ps2bf16(11, 2, 10))
		g.f("VMOVDQU32 Z11, (BX)")
	} else {
		g.f("VMOVUPS Z10, (BX)")
		g.f("VMOVUPS Z2, 64(BX)")
	}
	g.f("ADDQ $128, AX")
	g.f("ADDQ $%d, BX", 32*out)
	g.f("DECQ DX")
	g.f("JNZ exp32")
	g.label("exp16")
	g.f("TESTQ $1, R11")
	g.f("JZ exptail")
	g.f("VMOVAPS Z14, Z8")
	g.f("VFMADD231PS (AX), Z16, Z8")
	g.exp2(8, 9, 10, 17, len(coefs))
	g.f("VADDPS Z10, Z15, Z15")
	g.storeTo(10, 11, bf16, false, "(BX)")
	g.f("ADDQ $64, AX")
	g.f("ADDQ $%d, BX", 16*out)
	g.label("exptail")
	g.f("MOVQ n+40(FP), CX")
	g.f("ANDQ $15, CX")
	g.f("JZ expdone")
	g.f("VMOVUPS.Z (AX), K1, Z12")
	g.f("VMOVAPS Z14, Z8")
	g.f("VFMADD231PS Z12, Z16, Z8")
	g.exp2(8, 9, 10, 17, len(coefs))
	g.f("VADDPS Z10, Z6, K1, Z6")
	g.storeTo(10, 11, bf16, true, "(BX)")
	g.label("expdone")
	if bf16 { // zero pad column for an odd n (the PV product reads k-pairs)
		g.f("MOVQ n+40(FP), CX")
		g.f("TESTQ $1, CX")
		g.f("JZ even")
		g.f("MOVW $0, (DI)(CX*2)")
		g.label("even")
	}
	g.f("VADDPS Z6, Z15, Z7")
	g.hreduce("VADDPS", 7, 5)
	g.f("VMOVSS (R9)(R8*4), X6")
	g.f("VFMADD213SS X7, X13, X6")
	g.f("VMOVSS X6, (R9)(R8*4)")
	// O row *= a (a is 0 on a row's first block, 1 while its max holds).
	g.f("MOVQ R10, BX")
	g.f("MOVQ R12, DX")
	g.f("TESTQ DX, DX")
	g.f("JZ otail")
	g.label("oloop")
	g.f("VMULPS (BX), Z13, Z9")
	g.f("VMOVUPS Z9, (BX)")
	g.f("ADDQ $64, BX")
	g.f("DECQ DX")
	g.f("JNZ oloop")
	g.label("otail")
	g.f("MOVQ no+80(FP), CX")
	g.f("ANDQ $15, CX")
	g.f("JZ next")
	g.f("VMOVUPS.Z (BX), K2, Z9")
	g.f("VMULPS Z9, Z13, Z9")
	g.f("VMOVUPS Z9, K2, (BX)")
	g.label("next")
	g.f("ADDQ ldp+8(FP), DI")
	g.f("ADDQ lds+24(FP), SI")
	g.f("ADDQ ldo+72(FP), R10")
	g.f("INCQ R8")
	g.f("CMPQ R8, rows+32(FP)")
	g.f("JNE row")
	g.f("VZEROUPPER")
	g.f("RET")
}

// exp2pair is exp2 on two independent vectors, interleaved.
func (g *gen) exp2pair(t, n, p, t2, n2, p2, coef, ncoef int) {
	g.f("VRNDSCALEPS $0, Z%d, Z%d", t, n)
	g.f("VRNDSCALEPS $0, Z%d, Z%d", t2, n2)
	g.f("VSUBPS Z%d, Z%d, Z%d", n, t, t)
	g.f("VSUBPS Z%d, Z%d, Z%d", n2, t2, t2)
	g.f("VMOVAPS Z%d, Z%d", coef, p)
	g.f("VMOVAPS Z%d, Z%d", coef, p2)
	for c := coef + 1; c < coef+ncoef; c++ {
		g.f("VFMADD213PS Z%d, Z%d, Z%d", c, t, p)
		g.f("VFMADD213PS Z%d, Z%d, Z%d", c, t2, p2)
	}
	g.f("VSCALEFPS Z%d, Z%d, Z%d", n, p, p)
	g.f("VSCALEFPS Z%d, Z%d, Z%d", n2, p2, p2)
}

// scaleRows writes scaleRowsBF16AVX512 or scaleRowsF32AVX512:
// dst[r][j] = src[r][j]·f[r] (rounded to bf16 for the bf16 form).
func (g *gen) scaleRows(bf16 bool) {
	name, dt, out := "scaleRowsF32AVX512", "*float32", 4
	if bf16 {
		name, dt, out = "scaleRowsBF16AVX512", "*uint16", 2
	}
	g.raw(fmt.Sprintf(`
// func %s(dst %s, ldd uintptr, src *float32, lds uintptr, rows, n int, f *float32)
// dst[r][j] = src[r][j]·f[r] for r < rows, j < n.
TEXT ·%s(SB), NOSPLIT, $0-56`, name, dt, name))
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+16(FP), SI")
	g.f("MOVQ f+48(FP), R8")
	g.f("MOVQ rows+32(FP), R9")
	g.f("MOVQ n+40(FP), CX")
	g.tailMask("R11", "K1")
	g.label("row")
	g.f("VBROADCASTSS (R8), Z1")
	g.f("MOVQ DI, R10")
	g.f("MOVQ SI, BX")
	g.f("MOVQ R11, DX")
	g.f("TESTQ DX, DX")
	g.f("JZ tail")
	g.label("loop")
	g.f("VMULPS (BX), Z1, Z0")
	g.storeTo(0, 5, bf16, false, "(R10)")
	g.f("ADDQ $64, BX")
	g.f("ADDQ $%d, R10", 16*out)
	g.f("DECQ DX")
	g.f("JNZ loop")
	g.label("tail")
	g.f("MOVQ n+40(FP), CX")
	g.f("ANDQ $15, CX")
	g.f("JZ next")
	g.f("VMOVUPS.Z (BX), K1, Z0")
	g.f("VMULPS Z0, Z1, Z0")
	g.storeTo(0, 5, bf16, true, "(R10)")
	g.label("next")
	g.f("ADDQ ldd+8(FP), DI")
	g.f("ADDQ lds+24(FP), SI")
	g.f("ADDQ $4, R8")
	g.f("DECQ R9")
	g.f("JNZ row")
	g.f("VZEROUPPER")
	g.f("RET")
}

// storeTo is storeOut with an explicit address.
func (g *gen) storeTo(z, w int, bf16, tail bool, addr string) {
	switch {
	case !bf16 && tail:
		g.f("VMOVUPS Z%d, K1, %s", z, addr)
	case !bf16:
		g.f("VMOVUPS Z%d, %s", z, addr)
	default:
		g.raw("	" + vcvtneps2bf16(w, z))
		if tail {
			g.f("VMOVDQU16 Y%d, K1, %s", w, addr)
		} else {
			g.f("VMOVDQU Y%d, %s", w, addr)
		}
	}
}

// addBF16 writes addBF16AVX512: dst[i] += float32(src[i]).
func (g *gen) addBF16() {
	g.raw(`
// func addBF16AVX512(dst *float32, src *uint16, n int)
// dst[i] += float32(src[i]) (bf16 widened exactly).
TEXT ·addBF16AVX512(SB), NOSPLIT, $0-24`)
	g.f("MOVQ dst+0(FP), DI")
	g.f("MOVQ src+8(FP), SI")
	g.f("MOVQ n+16(FP), CX")
	g.blocks()
	g.rowLoop("add", map[string]int{"SI": 32, "DI": 64}, func(tail bool) {
		if tail {
			g.f("VPMOVZXWD.Z (SI), K1, Z0")
			g.f("VMOVUPS.Z (DI), K1, Z1")
		} else {
			g.f("VPMOVZXWD (SI), Z0")
			g.f("VMOVUPS (DI), Z1")
		}
		g.f("VPSLLD $16, Z0, Z0")
		g.f("VADDPS Z1, Z0, Z0")
		g.storeOut(0, 5, false, tail)
	})
	g.f("VZEROUPPER")
	g.f("RET")
}
