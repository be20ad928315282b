//go:build purego || !amd64

package decoder

import "github.com/xdna-whisper/xdna-whisper/encoder/kernels"

func haveGEMV(kernels.ISA) bool { return false }

func gemv([]float32, []float32, *kernels.Packed, bool) { panic("decoder: gemv without assembly") }
