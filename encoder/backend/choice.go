package backend

import (
	"fmt"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// Choose reads the kernel and activation options the encoder and the decoder
// share: kernelsName is "" or "auto" (the best ISA here) or an ISA name;
// kernelsName "amx" is recognised and always refused (no AMX kernels yet);
// activations is "" or "auto" (bf16 where VDPBF16PS runs, else fp32), "bf16"
// (avx512bf16 or portable kernels only) or "fp32".
func Choose(kernelsName, activations string) (kernels.ISA, Precision, error) {
	isa := kernels.Detect()
	if k := strings.ToLower(kernelsName); k != "" && k != "auto" {
		var err error
		if isa, err = kernels.ParseISA(k); err != nil {
			return 0, 0, err
		}
		if err := isa.Check(); err != nil {
			return 0, 0, err
		}
	}
	switch strings.ToLower(activations) {
	case "", "auto":
		if isa == kernels.AVX512BF16 {
			return isa, BF16, nil
		}
		return isa, FP32, nil
	case "bf16":
		if isa != kernels.AVX512BF16 && isa != kernels.Portable {
			return 0, 0, fmt.Errorf("bf16 activations need the avx512bf16 (or portable) kernels, have %s", isa)
		}
		return isa, BF16, nil
	case "fp32":
		return isa, FP32, nil
	}
	return 0, 0, fmt.Errorf("activations %q, want auto, bf16 or fp32", activations)
}
