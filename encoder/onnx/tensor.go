package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/x448/float16"
	"google.golang.org/protobuf/encoding/protowire"
)

// maxElements bounds a tensor's element count (product of dims).
const maxElements = 1 << 40

// Storage says where a tensor's elements are stored.
type Storage int

// Where tensor elements can be stored.
const (
	StorageNone     Storage = iota // no elements (empty tensor)
	StorageRaw                     // raw_data
	StorageTyped                   // float_data, int32_data, int64_data, ...
	StorageExternal                // an external-data file
)

// String names the storage as onnx.proto does ("raw_data", ...).
func (s Storage) String() string {
	return [...]string{"none", "raw_data", "typed field", "external data"}[s]
}

// Tensor is a TensorProto whose payload stays where the file has it.
type Tensor struct {
	Name     string
	DataType DataType
	Dims     []int64
	Storage  Storage
	// External is set when Storage is StorageExternal.
	External External

	raw     []byte // raw_data
	msg     []byte // the whole TensorProto, re-scanned for typed fields
	packed  []byte // the only occurrence of a packed fixed-width typed field, if so
	typedN  int64  // number of elements in typed fields
	numElem int64
}

// External is where a tensor's bytes lie in an external-data file.
type External struct {
	// Location is the file's path relative to the model's folder.
	Location string
	// Offset and Length locate the bytes in the file.
	Offset, Length int64
}

// NumElements is the product of the dims (1 for a scalar).
func (t *Tensor) NumElements() int64 { return t.numElem }

// Shape returns the dims as ints.
func (t *Tensor) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[i] = int(d)
	}
	return s
}

// ByteSize is the size of the elements in raw form (NumElements × element size).
func (t *Tensor) ByteSize() int64 { return t.numElem * int64(t.DataType.Size()) }

func (m *Model) parseTensor(b []byte) (*Tensor, error) {
	t := &Tensor{msg: b}
	var typedFields, segments int
	var ext []kv
	location := int64(0)
	err := fields(b, func(f field) (err error) {
		switch f.num {
		case fieldDims:
			t.Dims, err = f.varints(t.Dims, "dims")
		case fieldDataType:
			var v int64
			v, err = f.int64("data_type")
			t.DataType = DataType(v)
		case fieldSegment:
			segments++
		case fieldTensorName:
			t.Name, err = f.str("name")
		case fieldRawData:
			t.raw, err = f.bytes("raw_data")
			if t.raw == nil {
				t.raw = []byte{}
			}
		case fieldFloatData, fieldInt32Data, fieldInt64Data, fieldDoubleData, fieldUint64Data, fieldStringData:
			typedFields++
		case fieldExternalData:
			var eb []byte
			if eb, err = f.bytes("external_data"); err != nil {
				return err
			}
			var e kv
			if e, err = parseKV(eb); err != nil {
				return fmt.Errorf("external_data: %w", err)
			}
			ext = append(ext, e)
		case fieldDataLocation:
			location, err = f.int64("data_location")
		}
		return err
	})
	if err != nil {
		return t, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if err := t.check(segments, typedFields, location, ext); err != nil {
		return t, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return t, nil
}

type kv struct{ key, value string }

func parseKV(b []byte) (kv, error) {
	var e kv
	err := fields(b, func(f field) (err error) {
		switch f.num {
		case fieldKey:
			e.key, err = f.str("key")
		case fieldValue:
			e.value, err = f.str("value")
		}
		return err
	})
	return e, err
}

// check validates dims and that the stored payload has exactly the bytes or
// elements the dims need.
func (t *Tensor) check(segments, typedFields int, location int64, ext []kv) error {
	if segments > 0 {
		return errors.New("segmented tensors are not supported")
	}
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 {
			return fmt.Errorf("negative dimension in dims %v", t.Dims)
		}
		if d != 0 && n > maxElements/d {
			return fmt.Errorf("dims %v: more than %d elements", t.Dims, int64(maxElements))
		}
		n *= d
	}
	t.numElem = n
	size := int64(t.DataType.Size())
	switch {
	case location == 1:
		t.Storage = StorageExternal
		return t.checkExternal(ext, n, size)
	case location != 0:
		return fmt.Errorf("data_location %d, want 0 (DEFAULT) or 1 (EXTERNAL)", location)
	case t.raw != nil:
		t.Storage = StorageRaw
		if size == 0 {
			return fmt.Errorf("data type %s in raw_data is not supported", t.DataType)
		}
		if int64(len(t.raw)) != n*size {
			return fmt.Errorf("%s dims %v need %d bytes, raw_data holds %d", t.DataType, t.Dims, n*size, len(t.raw))
		}
	case typedFields > 0:
		t.Storage = StorageTyped
		return t.checkTyped(n)
	default:
		if n != 0 {
			return fmt.Errorf("%s dims %v need %d elements, the tensor stores none", t.DataType, t.Dims, n)
		}
	}
	return nil
}

func (t *Tensor) checkExternal(ext []kv, n, size int64) error {
	if size == 0 {
		return fmt.Errorf("data type %s in external data is not supported", t.DataType)
	}
	t.External.Length = -1
	for _, e := range ext {
		var err error
		switch e.key {
		case "location":
			t.External.Location = e.value
		case "offset":
			t.External.Offset, err = strconv.ParseInt(e.value, 10, 64)
		case "length":
			t.External.Length, err = strconv.ParseInt(e.value, 10, 64)
		}
		if err != nil {
			return fmt.Errorf("external_data %s %q: want a number", e.key, e.value)
		}
	}
	if t.External.Location == "" {
		return errors.New("data_location EXTERNAL without a location")
	}
	if t.External.Offset < 0 {
		return fmt.Errorf("external data offset %d, want ≥ 0", t.External.Offset)
	}
	if t.External.Length < 0 {
		t.External.Length = n * size
	}
	if t.External.Length != n*size {
		return fmt.Errorf("%s dims %v need %d bytes, external data length is %d", t.DataType, t.Dims, n*size, t.External.Length)
	}
	return nil
}

// checkTyped counts the elements in the typed fields and records the packed
// bytes when one packed fixed-width field holds them all.
func (t *Tensor) checkTyped(n int64) error {
	want := t.DataType.typedField()
	if want == 0 {
		return fmt.Errorf("data type %s in typed fields is not supported", t.DataType)
	}
	occurrences := 0
	err := fields(t.msg, func(f field) error {
		switch f.num {
		case fieldFloatData, fieldInt32Data, fieldInt64Data, fieldDoubleData, fieldUint64Data, fieldStringData:
		default:
			return nil
		}
		if int(f.num) != want {
			return fmt.Errorf("%s data in field %d, want field %d", t.DataType, f.num, want)
		}
		occurrences++
		c, err := countTyped(f)
		t.typedN += c
		if err == nil && f.typ == protowire.BytesType && (want == fieldFloatData || want == fieldDoubleData) {
			t.packed = f.b
		}
		return err
	})
	if err != nil {
		return err
	}
	if occurrences != 1 {
		t.packed = nil
	}
	if t.typedN != n {
		return fmt.Errorf("%s dims %v need %d elements, the typed field holds %d", t.DataType, t.Dims, n, t.typedN)
	}
	return nil
}

// countTyped counts the elements of one occurrence of a typed field.
func countTyped(f field) (int64, error) {
	fixed := map[protowire.Number]int{fieldFloatData: 4, fieldDoubleData: 8}[f.num]
	switch {
	case f.typ == protowire.BytesType && fixed > 0:
		if len(f.b)%fixed != 0 {
			return 0, fmt.Errorf("packed field %d: %d bytes, want a multiple of %d", f.num, len(f.b), fixed)
		}
		return int64(len(f.b) / fixed), nil
	case f.typ == protowire.BytesType:
		c, err := countVarints(f.b)
		return int64(c), err
	case fixed == 4 && f.typ == protowire.Fixed32Type, fixed == 8 && f.typ == protowire.Fixed64Type,
		fixed == 0 && f.typ == protowire.VarintType:
		return 1, nil
	}
	return 0, fmt.Errorf("field %d: wire type %d does not fit its element type", f.num, f.typ)
}

// Bytes returns the tensor's elements as contiguous little-endian bytes when
// the file stores them so (raw_data, external data, or one packed float or
// double field); ok is false when they must be decoded from varints (use
// Float32s or Int64s).
func (m *Model) Bytes(t *Tensor) (b []byte, ok bool, err error) {
	switch t.Storage {
	case StorageRaw:
		return t.raw, true, nil
	case StorageExternal:
		b, err := m.externalBytes(t)
		return b, err == nil, err
	case StorageTyped:
		if t.packed != nil && int64(len(t.packed)) == t.ByteSize() {
			return t.packed, true, nil
		}
		return nil, false, nil
	}
	return []byte{}, true, nil
}

// Float32s decodes the tensor's elements into dst, which must hold
// NumElements values. Every numeric type is converted to float32 (exactly for
// FLOAT, FLOAT16, BFLOAT16 and integers of up to 24 bits).
func (m *Model) Float32s(t *Tensor, dst []float32) error {
	if int64(len(dst)) != t.numElem {
		return fmt.Errorf("%s: tensor %q: decode into %d values, want %d", m.where(), t.Name, len(dst), t.numElem)
	}
	b, ok, err := m.Bytes(t)
	if err != nil {
		return err
	}
	if ok {
		if err := decodeLE(dst, b, t.DataType); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", m.where(), t.Name, err)
		}
		return nil
	}
	i := 0
	return m.eachTyped(t, func(v uint64) {
		dst[i] = typedToFloat32(v, t.DataType)
		i++
	})
}

// Int64s decodes an integer tensor (INT64, INT32, INT16, INT8, UINT8, ...) of
// at most 1<<20 elements, as used for shapes and other small constants.
func (m *Model) Int64s(t *Tensor) ([]int64, error) {
	if t.numElem > 1<<20 {
		return nil, fmt.Errorf("%s: tensor %q: %d elements is too many for an integer constant", m.where(), t.Name, t.numElem)
	}
	switch t.DataType {
	case Int64, Int32, Int16, Int8, Uint8, Uint16, Uint32, Bool:
	default:
		return nil, fmt.Errorf("%s: tensor %q: data type %s, want an integer type", m.where(), t.Name, t.DataType)
	}
	out := make([]int64, 0, t.numElem)
	b, ok, err := m.Bytes(t)
	if err != nil {
		return nil, err
	}
	if !ok {
		err := m.eachTyped(t, func(v uint64) { out = append(out, typedToInt64(v, t.DataType)) })
		return out, err
	}
	size := t.DataType.Size()
	for i := 0; i+size <= len(b); i += size {
		var v uint64
		switch size {
		case 1:
			v = uint64(b[i])
		case 2:
			v = uint64(binary.LittleEndian.Uint16(b[i:]))
		case 4:
			v = uint64(binary.LittleEndian.Uint32(b[i:]))
		case 8:
			v = binary.LittleEndian.Uint64(b[i:])
		}
		out = append(out, typedToInt64(v, t.DataType))
	}
	return out, nil
}

// eachTyped calls fn with the raw value of every element of the typed field,
// in order (fixed32/fixed64 bits, or the varint).
func (m *Model) eachTyped(t *Tensor, fn func(v uint64)) error {
	want := protowire.Number(t.DataType.typedField())
	fixed := map[protowire.Number]int{fieldFloatData: 4, fieldDoubleData: 8}[want]
	return fields(t.msg, func(f field) error {
		if f.num != want {
			return nil
		}
		if f.typ != protowire.BytesType {
			fn(f.v)
			return nil
		}
		for b := f.b; len(b) > 0; {
			switch fixed {
			case 4:
				fn(uint64(binary.LittleEndian.Uint32(b)))
				b = b[4:]
			case 8:
				fn(binary.LittleEndian.Uint64(b))
				b = b[8:]
			default:
				v, k := protowire.ConsumeVarint(b)
				fn(v)
				b = b[k:]
			}
		}
		return nil
	})
}

// typedToFloat32 converts the raw value of a typed-field element.
func typedToFloat32(v uint64, d DataType) float32 {
	switch d {
	case Float:
		return math.Float32frombits(uint32(v))
	case Double:
		return float32(math.Float64frombits(v))
	case Float16:
		return float16.Frombits(uint16(v)).Float32()
	case BFloat16:
		return math.Float32frombits(uint32(uint16(v)) << 16)
	}
	return float32(typedToInt64(v, d))
}

// typedToInt64 interprets the raw value of an integer element.
func typedToInt64(v uint64, d DataType) int64 {
	switch d {
	case Int8:
		return int64(int8(v))
	case Int16:
		return int64(int16(v))
	case Int32:
		return int64(int32(v))
	case Uint8:
		return int64(uint8(v))
	case Uint16:
		return int64(uint16(v))
	case Uint32:
		return int64(uint32(v))
	case Bool:
		if v != 0 {
			return 1
		}
		return 0
	}
	return int64(v)
}

// decodeLE converts little-endian elements of type d in b into dst.
func decodeLE(dst []float32, b []byte, d DataType) error {
	size := d.Size()
	if size == 0 || len(b) != len(dst)*size {
		return fmt.Errorf("%d bytes of %s for %d values", len(b), d, len(dst))
	}
	switch d {
	case Float:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case Float16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32()
		}
	case BFloat16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case Double:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case Int8:
		for i := range dst {
			dst[i] = float32(int8(b[i]))
		}
	case Uint8, Bool:
		for i := range dst {
			dst[i] = float32(b[i])
		}
	default:
		for i := range dst {
			var v uint64
			switch size {
			case 2:
				v = uint64(binary.LittleEndian.Uint16(b[2*i:]))
			case 4:
				v = uint64(binary.LittleEndian.Uint32(b[4*i:]))
			case 8:
				v = binary.LittleEndian.Uint64(b[8*i:])
			}
			dst[i] = float32(typedToInt64(v, d))
		}
	}
	return nil
}
