//go:build !purego

#include "textflag.h"

DATA gemvHiMask<>+0(SB)/4, $0xffff0000
GLOBL gemvHiMask<>(SB), RODATA|NOPTR, $4

// func gemvBF16AVX2(c *float32, a *float32, b *uint16, pairs int, panels int, accum int, bias *float32)
// One row of C = A·Bᵀ (+ bias) over a BF16Pairs packed B: for each panel p
// of 32 columns, c[32p+j] = (accum ? c[32p+j] : 0) + bias[32p+j] +
// Σ_q a[2q]·B[32p+j][2q] + a[2q+1]·B[32p+j][2q+1], in the order of the GEMM
// tiles (even k, then odd k, per pair). b advances pairs·128 bytes a panel,
// c and bias (nil: none) 32 floats.
TEXT ·gemvBF16AVX2(SB), NOSPLIT, $0-56
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ pairs+24(FP), R8
	MOVQ panels+32(FP), R9
	MOVQ accum+40(FP), R10
	MOVQ bias+48(FP), BX
	VPBROADCASTD gemvHiMask<>(SB), Y15
	TESTQ R9, R9
	JZ done
panel:
	TESTQ R10, R10
	JZ zero
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	JMP start
zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
start:
	TESTQ BX, BX
	JZ nobias
	VADDPS (BX), Y0, Y0
	VADDPS 32(BX), Y1, Y1
	VADDPS 64(BX), Y2, Y2
	VADDPS 96(BX), Y3, Y3
	ADDQ $128, BX
nobias:
	MOVQ SI, R11
	MOVQ R8, CX
	TESTQ CX, CX
	JZ store
loop:
	VBROADCASTSS (R11), Y14
	VBROADCASTSS 4(R11), Y13
	VMOVDQU (DX), Y4
	VMOVDQU 32(DX), Y5
	VMOVDQU 64(DX), Y6
	VMOVDQU 96(DX), Y7
	VPSLLD $16, Y4, Y8
	VPSLLD $16, Y5, Y9
	VPSLLD $16, Y6, Y10
	VPSLLD $16, Y7, Y11
	VFMADD231PS Y8, Y14, Y0
	VFMADD231PS Y9, Y14, Y1
	VFMADD231PS Y10, Y14, Y2
	VFMADD231PS Y11, Y14, Y3
	VPAND Y15, Y4, Y4
	VPAND Y15, Y5, Y5
	VPAND Y15, Y6, Y6
	VPAND Y15, Y7, Y7
	VFMADD231PS Y4, Y13, Y0
	VFMADD231PS Y5, Y13, Y1
	VFMADD231PS Y6, Y13, Y2
	VFMADD231PS Y7, Y13, Y3
	ADDQ $128, DX
	ADDQ $8, R11
	DECQ CX
	JNZ loop
store:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	DECQ R9
	JNZ panel
done:
	VZEROUPPER
	RET
