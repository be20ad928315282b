package main

import (
	"bytes"
	"fmt"
	"strings"
)

// evexRR encodes an EVEX.512.W0 register-register instruction in map 0F38:
// dst = op(src1 (EVEX.vvvv), src2 (ModRM.rm)). pp selects the implied prefix
// (1 = 66, 2 = F3, 3 = F2).
func evexRR(pp, opcode, dst, src1, src2 int) []byte {
	inv := func(v int) int { return ^v & 1 }
	p0 := inv(dst>>3)<<7 | inv(src2>>4)<<6 | inv(src2>>3)<<5 | inv(dst>>4)<<4 | 0x2
	p1 := 0<<7 | (^src1&0xF)<<3 | 1<<2 | pp
	p2 := 0<<7 | 2<<5 | 0<<4 | inv(src1>>4)<<3 // z=0, L'L=512 bits, b=0, V', aaa=0 (no mask)
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
