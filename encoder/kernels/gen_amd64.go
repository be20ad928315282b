//go:build ignore

// gen_amd64.go writes gemm_amd64.s, the GEMM micro-kernels in Go assembly.
// Run it with `go generate ./encoder/kernels` (see gemm_amd64.go).
//
// Go's assembler has no mnemonics for the AVX512_BF16 instructions, so
// VDPBF16PS and VCVTNE2PS2BF16 are emitted as raw EVEX bytes by evexRR below;
// TestRawEncodingObjdump disassembles those bytes with GNU objdump
// and checks that every one of them decodes to the instruction its comment names.
package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strings"
)

// evexRR encodes an EVEX.512.W0 register-register instruction in map 0F38:
// dst = op(src1 (EVEX.vvvv), src2 (ModRM.rm)). pp selects the implied prefix
// (1 = 66, 2 = F3, 3 = F2).
func evexRR(pp, opcode, dst, src1, src2 int) []byte {
	inv := func(v int) int { return ^v & 1 }
	p0 := inv(dst>>3)<<7 | inv(src2>>4)<<6 | inv(src2>>3)<<5 | inv(dst>>4)<<4 | 0x2
	p1 := 0<<7 | (^src1&0xF)<<3 | 1<<2 | pp
	p2 := 0<<7 | 2<<5 | 0<<4 | inv(src1>>4)<<3 | 0
	modrm := 0xC0 | (dst&7)<<3 | (src2 & 7)
	return []byte{0x62, byte(p0), byte(p1), byte(p2), byte(opcode), byte(modrm)}
}

// vdpbf16ps returns the raw-byte line for VDPBF16PS zmm(dst), zmm(src1), zmm(src2).
func vdpbf16ps(dst, src1, src2 int) string {
	return rawLine(evexRR(2, 0x52, dst, src1, src2),
		fmt.Sprintf("vdpbf16ps %%zmm%d,%%zmm%d,%%zmm%d", src2, src1, dst))
}

// vcvtne2ps2bf16 returns the raw-byte line for VCVTNE2PS2BF16 zmm(dst), zmm(hi), zmm(lo):
// the low 16 words of dst come from lo, the high 16 from hi.
func vcvtne2ps2bf16(dst, hi, lo int) string {
	return rawLine(evexRR(3, 0x72, dst, hi, lo), fmt.Sprintf("vcvtne2ps2bf16 %%zmm%d,%%zmm%d,%%zmm%d", lo, hi, dst))
}

// vcvtneps2bf16 returns the raw-byte line for VCVTNEPS2BF16 ymm(dst), zmm(src).
func vcvtneps2bf16(dst, src int) string {
	return rawLine(evexRR(2, 0x72, dst, 0, src), fmt.Sprintf("vcvtneps2bf16 %%zmm%d,%%ymm%d", src, dst))
}

// rawLine renders code as BYTE directives with a comment giving the
// instruction as GNU objdump prints it (TestRawEncodingObjdump checks it).
func rawLine(b []byte, att string) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("BYTE $0x%02x", x)
	}
	return strings.Join(parts, "; ") + " // objdump: " + att
}

type gen struct{ b bytes.Buffer }

func (g *gen) f(format string, args ...any) { fmt.Fprintf(&g.b, "\t"+format+"\n", args...) }
func (g *gen) label(l string)               { fmt.Fprintf(&g.b, "%s:\n", l) }
func (g *gen) raw(s string)                 { fmt.Fprintf(&g.b, "%s\n", s) }

// rowPtr names the base register holding row r's pointer group: rows are
// addressed as base + (r%3)*lda, with one base per three rows.
var rowBases = []string{"SI", "R8", "R9", "R10", "R11"}

// rowAddr is the memory operand of A[r][k] where off is the byte offset of k.
func rowAddr(r, off int) string {
	base := rowBases[r/3]
	switch r % 3 {
	case 0:
		return fmt.Sprintf("%d(%s)", off, base)
	case 1:
		return fmt.Sprintf("%d(%s)(R13*1)", off, base)
	default:
		return fmt.Sprintf("%d(%s)(R13*2)", off, base)
	}
}

// kernel describes one micro-kernel: rows×(2·vector width) accumulators.
type kernel struct {
	name  string
	doc   string
	rows  int
	zmm   bool // AVX-512 (Z registers, 16 lanes) or AVX2 (Y registers, 8 lanes)
	aBF16 bool // A holds bf16 pairs (VDPBF16PS) rather than float32
	bBF16 bool // B holds bf16 k-pairs (widened to fp32 unless aBF16)
	loop  func(g *gen, k kernel)
}

func (k kernel) reg(i int) string {
	if k.zmm {
		return fmt.Sprintf("Z%d", i)
	}
	return fmt.Sprintf("Y%d", i)
}

// vbytes is the vector width in bytes.
func (k kernel) vbytes() int {
	if k.zmm {
		return 64
	}
	return 32
}

func (g *gen) kernel(k kernel) {
	fmt.Fprintf(&g.b, "\n%s", k.doc)
	fmt.Fprintf(&g.b, "TEXT ·%s(SB), NOSPLIT, $24-80\n", k.name)
	g.f("MOVQ lda+8(FP), R13")
	g.f("MOVQ b+16(FP), DX")
	g.f("MOVQ c+24(FP), DI")
	g.f("MOVQ ldc+32(FP), R12")
	g.f("MOVQ bias+48(FP), BX")
	g.f("MOVQ panels+64(FP), AX")
	g.f("MOVQ AX, left-8(SP)")
	g.label("panel")
	g.f("MOVQ DI, cpan-16(SP)")
	g.f("MOVQ DX, bpan-24(SP)")
	g.f("MOVQ a+0(FP), SI")
	g.f("MOVQ n+40(FP), CX")
	// Row group bases: R8 = a + 3·lda, R9 = a + 6·lda, ...
	g.f("LEAQ (R13)(R13*2), AX")
	prev := "SI"
	for i := 1; i*3 < k.rows; i++ {
		g.f("LEAQ (%s)(AX*1), %s", prev, rowBases[i])
		prev = rowBases[i]
	}
	g.f("MOVQ accum+56(FP), AX")
	vb := k.vbytes()
	// Initialise the accumulators: C (accumulate) or zero, plus bias.
	g.f("TESTQ AX, AX")
	g.f("JZ zero")
	g.f("MOVQ DI, AX")
	for r := 0; r < k.rows; r++ {
		g.f("VMOVUPS (AX), %s", k.reg(2*r))
		g.f("VMOVUPS %d(AX), %s", vb, k.reg(2*r+1))
		if r+1 < k.rows {
			g.f("ADDQ R12, AX")
		}
	}
	g.f("JMP bias")
	g.label("zero")
	for i := 0; i < 2*k.rows; i++ {
		if k.zmm {
			g.f("VPXORD %s, %s, %s", k.reg(i), k.reg(i), k.reg(i))
		} else {
			g.f("VXORPS %s, %s, %s", k.reg(i), k.reg(i), k.reg(i))
		}
	}
	g.label("bias")
	g.f("TESTQ BX, BX")
	g.f("JZ start")
	for r := 0; r < k.rows; r++ {
		g.f("VADDPS (BX), %s, %s", k.reg(2*r), k.reg(2*r))
		g.f("VADDPS %d(BX), %s, %s", vb, k.reg(2*r+1), k.reg(2*r+1))
	}
	g.label("start")
	g.f("TESTQ CX, CX")
	g.f("JZ store")
	k.loop(g, k)
	g.label("store")
	for r := 0; r < k.rows; r++ {
		g.f("VMOVUPS %s, (DI)", k.reg(2*r))
		g.f("VMOVUPS %s, %d(DI)", k.reg(2*r+1), vb)
		if r+1 < k.rows {
			g.f("ADDQ R12, DI")
		}
	}
	// Next panel: C and bias move right by the tile width, B by bstride.
	g.f("MOVQ cpan-16(SP), DI")
	g.f("ADDQ $%d, DI", 2*vb)
	g.f("MOVQ bpan-24(SP), DX")
	g.f("ADDQ bstride+72(FP), DX")
	g.f("TESTQ BX, BX")
	g.f("JZ nobias")
	g.f("ADDQ $%d, BX", 2*vb)
	g.label("nobias")
	g.f("DECQ left-8(SP)")
	g.f("JNZ panel")
	g.f("VZEROUPPER")
	g.f("RET")
}

// advance moves the row pointers by step bytes.
func (g *gen) advance(k kernel, step int) {
	for i := 0; i*3 < k.rows; i++ {
		g.f("ADDQ $%d, %s", step, rowBases[i])
	}
}

// (An embedded-broadcast memory operand instead of VPBROADCASTD + two
// register-form VDPBF16PS measured 20% slower on Zen 5.)
// loopBF16 is the AVX512_BF16 inner loop: per k-pair, two B vectors of 16
// column pairs and one broadcast A pair per row feed two VDPBF16PS. The loop
// is unrolled by two k-pairs (an odd count ends with one single step).
func loopBF16(g *gen, k kernel) {
	step := func(u int) {
		g.f("VMOVDQU32 %d(DX), Z28", 128*u)
		g.f("VMOVDQU32 %d(DX), Z29", 128*u+64)
		for r := 0; r < k.rows; r++ {
			bc := 30 + r%2
			g.f("VPBROADCASTD %s, Z%d", rowAddr(r, 4*u), bc)
			g.raw("\t" + vdpbf16ps(2*r, 28, bc))
			g.raw("\t" + vdpbf16ps(2*r+1, 29, bc))
		}
	}
	g.f("MOVQ CX, AX")
	g.f("SHRQ $1, CX")
	g.f("JZ single")
	g.label("loop")
	step(0)
	step(1)
	g.f("ADDQ $256, DX")
	g.advance(k, 8)
	g.f("DECQ CX")
	g.f("JNZ loop")
	g.label("single")
	g.f("TESTQ $1, AX")
	g.f("JZ store")
	step(0)
}

// loopF32BF16AVX512 widens bf16 k-pairs to fp32: the even k is the low word
// shifted up, the odd k the high word masked; A is broadcast from memory.
func loopF32BF16AVX512(g *gen, k kernel) {
	g.f("VPBROADCASTD hiMask<>(SB), Z30")
	g.label("loop")
	g.f("VPSLLD $16, (DX), Z28")
	g.f("VPSLLD $16, 64(DX), Z29")
	for r := 0; r < k.rows; r++ {
		g.f("VFMADD231PS.BCST %s, Z28, Z%d", rowAddr(r, 0), 2*r)
		g.f("VFMADD231PS.BCST %s, Z29, Z%d", rowAddr(r, 0), 2*r+1)
	}
	g.f("VPANDD (DX), Z30, Z28")
	g.f("VPANDD 64(DX), Z30, Z29")
	for r := 0; r < k.rows; r++ {
		g.f("VFMADD231PS.BCST %s, Z28, Z%d", rowAddr(r, 4), 2*r)
		g.f("VFMADD231PS.BCST %s, Z29, Z%d", rowAddr(r, 4), 2*r+1)
	}
	g.f("ADDQ $128, DX")
	g.advance(k, 8)
	g.f("DECQ CX")
	g.f("JNZ loop")
}

// loopF32F32AVX512: plain fp32 panels, A broadcast from memory.
func loopF32F32AVX512(g *gen, k kernel) {
	g.label("loop")
	g.f("VMOVUPS (DX), Z28")
	g.f("VMOVUPS 64(DX), Z29")
	for r := 0; r < k.rows; r++ {
		g.f("VFMADD231PS.BCST %s, Z28, Z%d", rowAddr(r, 0), 2*r)
		g.f("VFMADD231PS.BCST %s, Z29, Z%d", rowAddr(r, 0), 2*r+1)
	}
	g.f("ADDQ $128, DX")
	g.advance(k, 4)
	g.f("DECQ CX")
	g.f("JNZ loop")
}

// loopF32BF16AVX2 is the AVX2/FMA twin of loopF32BF16AVX512 on a 16-column
// half panel (the panel row stride stays 128 bytes).
func loopF32BF16AVX2(g *gen, k kernel) {
	g.f("VPBROADCASTD hiMask<>(SB), Y15")
	g.label("loop")
	g.f("VMOVDQU (DX), Y12")
	g.f("VPSLLD $16, Y12, Y12")
	g.f("VMOVDQU 32(DX), Y13")
	g.f("VPSLLD $16, Y13, Y13")
	for r := 0; r < k.rows; r++ {
		g.f("VBROADCASTSS %s, Y14", rowAddr(r, 0))
		g.f("VFMADD231PS Y12, Y14, Y%d", 2*r)
		g.f("VFMADD231PS Y13, Y14, Y%d", 2*r+1)
	}
	g.f("VPAND (DX), Y15, Y12")
	g.f("VPAND 32(DX), Y15, Y13")
	for r := 0; r < k.rows; r++ {
		g.f("VBROADCASTSS %s, Y14", rowAddr(r, 4))
		g.f("VFMADD231PS Y12, Y14, Y%d", 2*r)
		g.f("VFMADD231PS Y13, Y14, Y%d", 2*r+1)
	}
	g.f("ADDQ $128, DX")
	g.advance(k, 8)
	g.f("DECQ CX")
	g.f("JNZ loop")
}

// loopF32F32AVX2: plain fp32 half panels.
func loopF32F32AVX2(g *gen, k kernel) {
	g.label("loop")
	g.f("VMOVUPS (DX), Y12")
	g.f("VMOVUPS 32(DX), Y13")
	for r := 0; r < k.rows; r++ {
		g.f("VBROADCASTSS %s, Y14", rowAddr(r, 0))
		g.f("VFMADD231PS Y12, Y14, Y%d", 2*r)
		g.f("VFMADD231PS Y13, Y14, Y%d", 2*r+1)
	}
	g.f("ADDQ $128, DX")
	g.advance(k, 4)
	g.f("DECQ CX")
	g.f("JNZ loop")
}

// cvtBF16 writes the AVX512_BF16 float32→bf16 conversion of 32 floats a step.
func (g *gen) cvtBF16() {
	g.raw(`
// func cvtBF16AVX512(dst *uint16, src *float32, n int)
// Converts n float32 (n a multiple of 32) to bf16, round to nearest even,
// with VCVTNE2PS2BF16 (denormals flush to zero).
TEXT ·cvtBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $5, CX
	JZ done
cvtloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
` + "\t" + vcvtne2ps2bf16(2, 1, 0) + `
	VMOVDQU32 Z2, (DI)
	ADDQ $128, SI
	ADDQ $64, DI
	DECQ CX
	JNZ cvtloop
done:
	VZEROUPPER
	RET`)
}

func main() {
	g := &gen{}
	g.raw("// Code generated by gen_amd64.go; DO NOT EDIT.\n\n//go:build !purego\n\n#include \"textflag.h\"")
	g.raw("\nDATA hiMask<>+0(SB)/4, $0xffff0000\nGLOBL hiMask<>(SB), RODATA|NOPTR, $4")
	sig := "(a, lda, b, c, ldc, n, bias, accum, panels, bstride)"
	g.kernel(kernel{
		name: "gemmBF16AVX512", rows: 14, zmm: true, aBF16: true, bBF16: true, loop: loopBF16,
		doc: "// func gemmBF16AVX512" + sig + "\n// 14×32 tile, A bf16 rows, B bf16 k-pair panel, n = k-pairs, VDPBF16PS.\n",
	})
	g.kernel(kernel{
		name: "gemmF32BF16AVX512", rows: 14, zmm: true, bBF16: true, loop: loopF32BF16AVX512,
		doc: "// func gemmF32BF16AVX512" + sig + "\n// 14×32 tile, A float32 rows, B bf16 k-pair panel widened to fp32, n = k-pairs.\n",
	})
	g.kernel(kernel{
		name: "gemmF32F32AVX512", rows: 14, zmm: true, loop: loopF32F32AVX512,
		doc: "// func gemmF32F32AVX512" + sig + "\n// 14×32 tile, A float32 rows, B float32 panel, n = k.\n",
	})
	g.kernel(kernel{
		name: "gemmF32BF16AVX2", rows: 6, bBF16: true, loop: loopF32BF16AVX2,
		doc: "// func gemmF32BF16AVX2" + sig + "\n// 6×16 tile (half a panel), A float32 rows, B bf16 k-pairs widened to fp32, n = k-pairs.\n",
	})
	g.kernel(kernel{
		name: "gemmF32F32AVX2", rows: 6, loop: loopF32F32AVX2,
		doc: "// func gemmF32F32AVX2" + sig + "\n// 6×16 tile (half a panel), A float32 rows, B float32 panel, n = k.\n",
	})
	g.cvtBF16()
	for _, f := range []struct {
		name string
		data []byte
	}{{"gemm_amd64.s", g.b.Bytes()}, {"vec_amd64.s", genVec()}, {"vec_avx2_amd64.s", genVecAVX2()}} {
		if err := os.WriteFile(f.name, f.data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// ---- Row operations (vec_amd64.s) ----

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
	g.raw("// Code generated by gen_amd64.go; DO NOT EDIT.\n\n//go:build !purego\n\n#include \"textflag.h\"\n")
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

// ---- Flash-attention row operations (attn.go) ----

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

// ---- AVX2 row operations (vec_avx2_amd64.s): whole 8-lane blocks; the Go
// wrappers finish the tails with the portable twins. ----

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
	g.raw("// Code generated by gen_amd64.go; DO NOT EDIT.\n\n//go:build !purego\n\n#include \"textflag.h\"\n")
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
