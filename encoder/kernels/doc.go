// Package kernels holds the numeric hot loops of the Whisper encoder: GEMM
// micro-kernels over BF16 weights (or weight-only int8 ones, Int8Cols, equal
// bit for bit to BF16 weights holding their values), and the vectorised row
// operations around
// them (LayerNorm, exact-erf GELU, the online-softmax step of a flash
// attention, float32→bf16 conversion).
//
// Every kernel has a portable pure-Go implementation. On amd64, Go assembly
// fast paths are selected at run time from the CPU's features (see ISA):
//
//   - AVX512BF16: VDPBF16PS (BF16×BF16 products, fp32 accumulation) for the
//     bf16-activation GEMM, VCVTNE2PS2BF16 for conversion, AVX-512 for the rest.
//   - AVX512: AVX-512F fp32 GEMMs with BF16 weights widened to fp32 on load.
//   - AVX2: AVX2/FMA fp32 GEMMs with BF16 weights widened to fp32.
//   - Portable: pure Go (the only ISA when built with the purego tag).
//
// The assembly is written by the generator internal/asmgen (go generate; make
// check-asm verifies the committed files are its output); the BF16 instructions
// the Go assembler cannot spell are emitted as raw EVEX bytes, and a test
// disassembles them with GNU objdump.
//
// Matrix convention: a GEMM computes C[M][N] = A[M][K]·Bᵀ + bias, with B the
// weight matrix [N][K] (out × in, as PyTorch stores Linear weights) packed
// once into panels of 32 columns (see Packed).
package kernels

//go:generate go run ./internal/asmgen -out .
