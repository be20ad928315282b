package safetensors

import "fmt"

// DType is a tensor element type as spelled in a safetensors header.
type DType string

// The element types of the safetensors format.
const (
	Bool   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
)

var dtypeSizes = map[DType]int{
	Bool: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	F64: 8, I64: 8, U64: 8,
}

// Size is the number of bytes of one element, or an error for an unknown type.
func (d DType) Size() (int, error) {
	n, ok := dtypeSizes[d]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %q", string(d))
	}
	return n, nil
}

// byteLen is the byte length of a tensor of dtype d and the given shape, or an
// error if a dimension is negative or the product overflows limit.
func byteLen(d DType, shape []int, limit uint64) (uint64, error) {
	size, err := d.Size()
	if err != nil {
		return 0, err
	}
	n := uint64(size)
	for _, s := range shape {
		if s < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if s != 0 && n > limit/uint64(s) {
			return 0, fmt.Errorf("%s %v needs more than %d bytes", d, shape, limit)
		}
		n *= uint64(s)
	}
	return n, nil
}
