package main

import (
	"bytes"
	"fmt"
)

// The weight-only int8 micro-kernels: fp32 A rows times an Int8Cols B panel
// (per k, 32 int8 of the panel's columns; per column a power-of-two scale).
// Each weight is widened to fp32 (VPMOVSXBD, VCVTDQ2PS) and multiplied by
// its column's scale (exact), then the FMAs run in the order of the
// BF16Pairs fp32 kernels (even k, then odd k of each pair), so the results
// equal theirs on the dequantised weights bit for bit. They take an 11th
// argument, scale, the scales of the tile's first column; it moves 32
// floats a panel.

const int8Args = 88 // the common 80 bytes and the scale pointer

const int8Sig = "(a, lda, b, c, ldc, n, bias, accum, panels, bstride, scale)"

// int8GemmKernels lists the int8 kernels (their exact-row tables are of
// type int8Kern, not tileFn, and take A as an unsafe.Pointer).
func int8GemmKernels() []gemmKernel {
	doc := func(name, what string) string { return "// func " + name + int8Sig + "\n// " + what + "\n" }
	return []gemmKernel{
		{kernel{name: "gemmF32I8AVX512", rows: 14, zmm: true, loop: loopF32I8AVX512, args: int8Args,
			doc: doc("gemmF32I8AVX512", "14×32 tile, A float32 rows, B int8 panel widened to fp32 times the column scales, n = k-pairs.")},
			"rowsF32I8AVX512", "float32", "int8"},
		{kernel{name: "gemmBF16I8AVX512", rows: 14, zmm: true, aBF16: true, loop: loopBF16I8AVX512, args: int8Args,
			doc: doc("gemmBF16I8AVX512", "14×32 tile, A bf16 rows, B int8 panel widened to bf16 k-pairs of q·s, n = k-pairs, VDPBF16PS.")},
			"rowsBF16I8AVX512", "uint16", "int8"},
		{kernel{name: "gemmF32I8AVX2", rows: 6, loop: loopF32I8AVX2, args: int8Args,
			doc: doc("gemmF32I8AVX2", "6×16 tile (half a panel), A float32 rows, B int8 widened to fp32 times the column scales, n = k-pairs.")},
			"rowsF32I8AVX2", "float32", "int8"},
	}
}

// int8Kernels adds the int8 kernels to gemm_amd64.s.
func int8Kernels(g *gen) {
	for _, gk := range int8GemmKernels() {
		g.kernel(gk.k)
	}
}

// int8RowsAsm adds their exact-row twins to gemm_rows_amd64.s.
func int8RowsAsm(g *gen) {
	for _, rk := range int8GemmKernels() {
		for r := 1; r < rk.k.rows; r++ {
			k := rk.k
			k.rows, k.name = r, fmt.Sprintf("%sR%d", rk.k.name, r)
			k.doc = fmt.Sprintf("// func %s%s\n// %s for %d row(s).\n", k.name, int8Sig, rk.k.name, r)
			g.kernel(k)
		}
	}
}

// int8RowsGo adds their declarations and tables to gemm_rows_amd64.go.
func int8RowsGo(b *bytes.Buffer) {
	for _, rk := range int8GemmKernels() {
		fmt.Fprintf(b, "\n// %s[r] computes r rows of %s's tile (r = 1 … %d).\nvar %s = [...]int8Kern{\n", rk.table, rk.k.name, rk.k.rows-1, rk.table)
		w := len(fmt.Sprint(rk.k.rows-1)) + 1 // the keys aligned as gofmt does
		for r := 1; r < rk.k.rows; r++ {
			fmt.Fprintf(b, "\t%-*s %sR%d,\n", w, fmt.Sprintf("%d:", r), rk.k.name, r)
		}
		b.WriteString("}\n")
		for r := 1; r < rk.k.rows; r++ {
			fmt.Fprintf(b, "\n//go:noescape\nfunc %sR%d(a unsafe.Pointer, lda uintptr, b *%s, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32)\n", rk.k.name, r, rk.b)
		}
	}
}

// loopF32I8AVX512 keeps the panel's 32 scales in Z30 and Z31.
func loopF32I8AVX512(g *gen, k kernel) {
	g.f("MOVQ scale+80(FP), AX")
	g.f("VMOVUPS (AX), Z30")
	g.f("VMOVUPS 64(AX), Z31")
	g.f("ADDQ $128, scale+80(FP)")
	g.label("loop")
	for j := 0; j < 2; j++ { // even k, then odd k
		g.f("VPMOVSXBD %d(DX), Z28", 32*j)
		g.f("VPMOVSXBD %d(DX), Z29", 32*j+16)
		g.f("VCVTDQ2PS Z28, Z28")
		g.f("VCVTDQ2PS Z29, Z29")
		g.f("VMULPS Z30, Z28, Z28")
		g.f("VMULPS Z31, Z29, Z29")
		for r := 0; r < k.rows; r++ {
			g.f("VFMADD231PS.BCST %s, Z28, Z%d", rowAddr(r, 4*j), 2*r)
			g.f("VFMADD231PS.BCST %s, Z29, Z%d", rowAddr(r, 4*j), 2*r+1)
		}
	}
	g.f("ADDQ $64, DX")
	g.advance(k, 8)
	g.f("DECQ CX")
	g.f("JNZ loop")
}

// loopF32I8AVX2 reads the half panel's 16 scales from memory (AX).
func loopF32I8AVX2(g *gen, k kernel) {
	g.f("MOVQ scale+80(FP), AX")
	g.f("ADDQ $64, scale+80(FP)")
	g.label("loop")
	for j := 0; j < 2; j++ {
		g.f("VPMOVSXBD %d(DX), Y12", 32*j)
		g.f("VPMOVSXBD %d(DX), Y13", 32*j+8)
		g.f("VCVTDQ2PS Y12, Y12")
		g.f("VCVTDQ2PS Y13, Y13")
		g.f("VMULPS (AX), Y12, Y12")
		g.f("VMULPS 32(AX), Y13, Y13")
		fmaRowsAVX2(g, k, 4*j)
	}
	g.f("ADDQ $64, DX")
	g.advance(k, 8)
	g.f("DECQ CX")
	g.f("JNZ loop")
}

// loopBF16I8AVX512 builds each k-pair's bf16 pair words from the int8
// panel: q·s is exactly a bf16, so its float32 bits shifted down 16 (even k)
// or'ed with the odd k's float32 bits (low half zero) are the BF16Pairs
// words of the dequantised weights, and VDPBF16PS then runs as in
// loopBF16. The scales are read from memory (AX): the registers hold 28
// accumulators, the two pair vectors and two broadcasts.
func loopBF16I8AVX512(g *gen, k kernel) {
	g.f("MOVQ scale+80(FP), AX")
	g.f("ADDQ $128, scale+80(FP)")
	g.label("loop")
	for h := 0; h < 2; h++ { // columns 0-15 into Z28, 16-31 into Z29
		dst, odd := 28+h, 29+h
		g.f("VPMOVSXBD %d(DX), Z%d", 16*h, dst)
		g.f("VPMOVSXBD %d(DX), Z%d", 32+16*h, odd)
		g.f("VCVTDQ2PS Z%d, Z%d", dst, dst)
		g.f("VCVTDQ2PS Z%d, Z%d", odd, odd)
		g.f("VMULPS %d(AX), Z%d, Z%d", 64*h, dst, dst)
		g.f("VMULPS %d(AX), Z%d, Z%d", 64*h, odd, odd)
		g.f("VPSRLD $16, Z%d, Z%d", dst, dst)
		g.f("VPORD Z%d, Z%d, Z%d", odd, dst, dst)
	}
	for r := 0; r < k.rows; r++ {
		bc := 30 + r%2
		g.f("VPBROADCASTD %s, Z%d", rowAddr(r, 0), bc)
		g.raw("\t" + vdpbf16ps(2*r, 28, bc))
		g.raw("\t" + vdpbf16ps(2*r+1, 29, bc))
	}
	g.f("ADDQ $64, DX")
	g.advance(k, 4)
	g.f("DECQ CX")
	g.f("JNZ loop")
}
