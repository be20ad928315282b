package onnx

import "fmt"

// DataType is TensorProto.DataType.
type DataType int32

// The ONNX element types.
const (
	Undefined  DataType = 0
	Float      DataType = 1
	Uint8      DataType = 2
	Int8       DataType = 3
	Uint16     DataType = 4
	Int16      DataType = 5
	Int32      DataType = 6
	Int64      DataType = 7
	String     DataType = 8
	Bool       DataType = 9
	Float16    DataType = 10
	Double     DataType = 11
	Uint32     DataType = 12
	Uint64     DataType = 13
	Complex64  DataType = 14
	Complex128 DataType = 15
	BFloat16   DataType = 16
	Uint4      DataType = 21
	Int4       DataType = 22
)

var dataTypeNames = map[DataType]string{
	Undefined: "UNDEFINED", Float: "FLOAT", Uint8: "UINT8", Int8: "INT8", Uint16: "UINT16",
	Int16: "INT16", Int32: "INT32", Int64: "INT64", String: "STRING", Bool: "BOOL",
	Float16: "FLOAT16", Double: "DOUBLE", Uint32: "UINT32", Uint64: "UINT64",
	Complex64: "COMPLEX64", Complex128: "COMPLEX128", BFloat16: "BFLOAT16",
	Uint4: "UINT4", Int4: "INT4",
}

// String is the name onnx.proto gives the type (FLOAT, FLOAT16, ...).
func (d DataType) String() string {
	if s, ok := dataTypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// Size is the byte size of one element in raw_data, or 0 for types this
// package does not decode (strings, complex, 4-bit).
func (d DataType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float, Int32, Uint32:
		return 4
	case Int64, Uint64, Double:
		return 8
	}
	return 0
}

// typedField is the TensorProto field that holds d's elements when raw_data
// is not used: float_data (4), int32_data (5), int64_data (7), double_data
// (10) or uint64_data (11).
func (d DataType) typedField() int {
	switch d {
	case Float:
		return fieldFloatData
	case Uint8, Int8, Uint16, Int16, Int32, Bool, Float16, BFloat16:
		return fieldInt32Data
	case Int64:
		return fieldInt64Data
	case Double:
		return fieldDoubleData
	case Uint32, Uint64:
		return fieldUint64Data
	}
	return 0
}
