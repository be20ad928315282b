// gemm_amd64.s: the GEMM micro-kernels and the fp32→bf16 conversion used by B-panel packing.

package main

import (
	"cmp"
	"fmt"
)

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
	args  int // argument bytes; 0 means the 80 of the common signature
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
	fmt.Fprintf(&g.b, "TEXT ·%s(SB), NOSPLIT, $24-%d\n", k.name, cmp.Or(k.args, 80))
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
	fmaRowsAVX2(g, k, 0)
	g.f("VPAND (DX), Y15, Y12")
	g.f("VPAND 32(DX), Y15, Y13")
	fmaRowsAVX2(g, k, 4)
	g.f("ADDQ $128, DX")
	g.advance(k, 8)
	g.f("DECQ CX")
	g.f("JNZ loop")
}

// fmaRowsAVX2 adds, for every row r of the tile, A[r] at byte offset off
// (broadcast) times the half panel's two B vectors Y12, Y13 into the row's
// accumulators.
func fmaRowsAVX2(g *gen, k kernel, off int) {
	for r := 0; r < k.rows; r++ {
		g.f("VBROADCASTSS %s, Y14", rowAddr(r, off))
		g.f("VFMADD231PS Y12, Y14, Y%d", 2*r)
		g.f("VFMADD231PS Y13, Y14, Y%d", 2*r+1)
	}
}

// loopF32F32AVX2: plain fp32 half panels.
func loopF32F32AVX2(g *gen, k kernel) {
	g.label("loop")
	g.f("VMOVUPS (DX), Y12")
	g.f("VMOVUPS 32(DX), Y13")
	fmaRowsAVX2(g, k, 0)
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
// with VCVTNE2PS2BF16 (denormals flush to zero): bf16.FromFloat32FTZ.
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

// gemmKernel is one micro-kernel of gemm_amd64.s with what its exact-row
// twins (gemm_rows_amd64.go) need: the Go name of their table and the Go
// element types of A and B.
type gemmKernel struct {
	k           kernel
	table, a, b string
}

// gemmKernels lists the micro-kernels, each defined once for both files.
func gemmKernels() []gemmKernel {
	sig := "(a, lda, b, c, ldc, n, bias, accum, panels, bstride)"
	doc := func(name, what string) string { return "// func " + name + sig + "\n// " + what + "\n" }
	return []gemmKernel{
		{kernel{name: "gemmBF16AVX512", rows: 14, zmm: true, aBF16: true, bBF16: true, loop: loopBF16,
			doc: doc("gemmBF16AVX512", "14×32 tile, A bf16 rows, B bf16 k-pair panel, n = k-pairs, VDPBF16PS.")},
			"rowsBF16AVX512", "uint16", "uint16"},
		{kernel{name: "gemmF32BF16AVX512", rows: 14, zmm: true, bBF16: true, loop: loopF32BF16AVX512,
			doc: doc("gemmF32BF16AVX512", "14×32 tile, A float32 rows, B bf16 k-pair panel widened to fp32, n = k-pairs.")},
			"rowsF32BF16AVX512", "float32", "uint16"},
		{kernel{name: "gemmF32F32AVX512", rows: 14, zmm: true, loop: loopF32F32AVX512,
			doc: doc("gemmF32F32AVX512", "14×32 tile, A float32 rows, B float32 panel, n = k.")},
			"rowsF32F32AVX512", "float32", "float32"},
		{kernel{name: "gemmF32BF16AVX2", rows: 6, bBF16: true, loop: loopF32BF16AVX2,
			doc: doc("gemmF32BF16AVX2", "6×16 tile (half a panel), A float32 rows, B bf16 k-pairs widened to fp32, n = k-pairs.")},
			"rowsF32BF16AVX2", "float32", "uint16"},
		{kernel{name: "gemmF32F32AVX2", rows: 6, loop: loopF32F32AVX2,
			doc: doc("gemmF32F32AVX2", "6×16 tile (half a panel), A float32 rows, B float32 panel, n = k.")},
			"rowsF32F32AVX2", "float32", "float32"},
	}
}

// genGEMM returns gemm_amd64.s.
func genGEMM() []byte {
	g := &gen{}
	g.raw(header)
	g.raw("\nDATA hiMask<>+0(SB)/4, $0xffff0000\nGLOBL hiMask<>(SB), RODATA|NOPTR, $4")
	for _, gk := range gemmKernels() {
		g.kernel(gk.k)
	}
	int8Kernels(g)
	g.cvtBF16()
	return g.b.Bytes()
}
