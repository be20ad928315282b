//go:build amd64 && !purego

#include "textflag.h"

// func convertLE16(dst *uint16, src *byte, n int, s *sums) int
//
// Per block of 16 float32 bit patterns b (Z0):
//   h   = (b + 0x7fff + ((b >> 16) & 1)) >> 16      round to nearest even
//   y   = h << 16                                    bf16(x) as float32
//   d   = x - y                                      exact in float32
//   maxAbs = max(maxAbs, |d|); sumSqErr += d²; sumSq += x²   (float64 lanes)
// A block where b or y has an all-ones exponent (NaN, ±Inf, overflow) ends
// the loop unconverted. sums is {maxAbs, sumSqErr, sumSq float64}.
TEXT ·convertLE16(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ s+24(FP), DX
	XORQ AX, AX

	MOVL $0x7fff, R8
	VPBROADCASTD R8, Z20
	MOVL $1, R8
	VPBROADCASTD R8, Z21
	MOVL $0x7f800000, R8
	VPBROADCASTD R8, Z22
	MOVL $0x7fffffff, R8
	VPBROADCASTD R8, Z23

	VPXORQ Z10, Z10, Z10 // sumSqErr, lanes 0-7
	VPXORQ Z11, Z11, Z11 // sumSqErr, lanes 8-15
	VPXORQ Z12, Z12, Z12 // sumSq, lanes 0-7
	VPXORQ Z13, Z13, Z13 // sumSq, lanes 8-15
	VPXORD Z14, Z14, Z14 // max |d| (float32)

loop:
	CMPQ CX, $16
	JLT  done
	VMOVDQU32 (SI), Z0

	// h = (b + 0x7fff + ((b >> 16) & 1)) >> 16, y = h << 16
	VPSRLD $16, Z0, Z2
	VPANDD Z21, Z2, Z2
	VPADDD Z20, Z2, Z2
	VPADDD Z0, Z2, Z2
	VPSRLD $16, Z2, Z2
	VPSLLD $16, Z2, Z3

	// special lanes: exponent of b or of y all ones
	VPANDD   Z22, Z0, Z4
	VPCMPEQD Z22, Z4, K1
	VPANDD   Z22, Z3, Z5
	VPCMPEQD Z22, Z5, K2
	KORW     K1, K2, K3
	KORTESTW K3, K3
	JNE      done

	// d = x - y; max |d|
	VSUBPS Z3, Z0, Z5
	VPANDD Z23, Z5, Z6
	VMAXPS Z6, Z14, Z14

	// sumSqErr += d², sumSq += x² in float64
	VCVTPS2PD      Y5, Z7
	VEXTRACTF64X4  $1, Z5, Y8
	VCVTPS2PD      Y8, Z8
	VFMADD231PD    Z7, Z7, Z10
	VFMADD231PD    Z8, Z8, Z11
	VCVTPS2PD      Y0, Z7
	VEXTRACTF64X4  $1, Z0, Y8
	VCVTPS2PD      Y8, Z8
	VFMADD231PD    Z7, Z7, Z12
	VFMADD231PD    Z8, Z8, Z13

	VPMOVDW Z2, (DI)

	ADDQ $64, SI
	ADDQ $32, DI
	ADDQ $16, AX
	SUBQ $16, CX
	JMP  loop

done:
	// fold the lanes into s
	VADDPD        Z11, Z10, Z10
	VEXTRACTF64X4 $1, Z10, Y1
	VADDPD        Y1, Y10, Y10
	VEXTRACTF128  $1, Y10, X1
	VADDPD        X1, X10, X10
	VUNPCKHPD     X10, X10, X1
	VADDSD        X1, X10, X10
	VADDSD        8(DX), X10, X10
	VMOVSD        X10, 8(DX)

	VADDPD        Z13, Z12, Z12
	VEXTRACTF64X4 $1, Z12, Y1
	VADDPD        Y1, Y12, Y12
	VEXTRACTF128  $1, Y12, X1
	VADDPD        X1, X12, X12
	VUNPCKHPD     X12, X12, X1
	VADDSD        X1, X12, X12
	VADDSD        16(DX), X12, X12
	VMOVSD        X12, 16(DX)

	VEXTRACTF64X4 $1, Z14, Y1
	VMAXPS        Y1, Y14, Y14
	VEXTRACTF128  $1, Y14, X1
	VMAXPS        X1, X14, X14
	VPSHUFD       $0x4e, X14, X1
	VMAXPS        X1, X14, X14
	VPSHUFD       $0xb1, X14, X1
	VMAXPS        X1, X14, X14
	VCVTSS2SD     X14, X14, X14
	VMAXSD        (DX), X14, X14
	VMOVSD        X14, (DX)

	VZEROUPPER
	MOVQ AX, ret+32(FP)
	RET
