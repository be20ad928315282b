// Package safetensors reads and writes the safetensors tensor file format:
// an 8-byte little-endian header length N, N bytes of JSON header mapping each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
// the byte buffer that follows the header) plus an optional "__metadata__"
// string map, then the byte buffer. Tensors are little-endian, C order, and
// together cover the buffer exactly.
//
// Open memory-maps a file and hands out zero-copy views of its tensors;
// Writer writes a file from tensors declared up front, streaming their bytes.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxHeaderSize bounds the JSON header accepted from a file (the reference
// implementation's limit).
const MaxHeaderSize = 100 << 20

const metadataKey = "__metadata__"

// TensorInfo describes one tensor: its name, element type, shape and where its
// bytes lie in the data buffer.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are the byte offsets of the tensor in the data buffer.
	Begin, End int64
}

// Tensor is a tensor's description plus a view of its bytes.
type Tensor struct {
	TensorInfo
	// Data is the tensor's bytes: a view into the file, valid until Close.
	Data []byte
}

// File is a parsed safetensors file.
type File struct {
	name     string
	mapped   []byte // the whole mapping, nil for Parse
	data     []byte // the byte buffer after the header
	metadata map[string]string
	tensors  []TensorInfo // sorted by Begin
	index    map[string]int
}

// Open memory-maps the safetensors file at path and validates its header.
// The tensor views stay valid until Close.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if st.Size() < 8 {
		return nil, fmt.Errorf("safetensors %s: file is %d bytes, want at least 8 (header length)", path, st.Size())
	}
	if int64(int(st.Size())) != st.Size() {
		return nil, fmt.Errorf("safetensors %s: file of %d bytes is too large to map", path, st.Size())
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: mmap: %w", path, err)
	}
	sf, err := parse(path, m)
	if err != nil {
		_ = unix.Munmap(m) // fails only for a range Mmap did not return
		return nil, err
	}
	sf.mapped = m
	return sf, nil
}

// Parse validates the safetensors bytes b, which must stay unchanged while the
// returned File is used. name labels errors.
func Parse(name string, b []byte) (*File, error) {
	return parse(name, b)
}

func parse(name string, b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("safetensors %s: %d bytes, want at least 8 (header length)", name, len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors %s: header length %d exceeds the limit %d", name, n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("safetensors %s: header length %d exceeds the %d bytes after it (truncated?)", name, n, len(b)-8)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("safetensors %s: header is not a JSON object: %w", name, err)
	}
	f := &File{name: name, data: b[8+n:], index: make(map[string]int, len(raw))}
	for key, v := range raw {
		if key == metadataKey {
			if err := json.Unmarshal(v, &f.metadata); err != nil {
				return nil, fmt.Errorf("safetensors %s: __metadata__ must map strings to strings: %w", name, err)
			}
			continue
		}
		ti, err := parseEntry(key, v, uint64(len(f.data)))
		if err != nil {
			return nil, fmt.Errorf("safetensors %s: %w", name, err)
		}
		f.tensors = append(f.tensors, ti)
	}
	if err := f.checkLayout(); err != nil {
		return nil, err
	}
	for i, t := range f.tensors {
		f.index[t.Name] = i
	}
	return f, nil
}

// parseEntry decodes and checks one tensor entry of the header.
func parseEntry(key string, v json.RawMessage, dataLen uint64) (TensorInfo, error) {
	var e struct {
		DType   *DType    `json:"dtype"`
		Shape   *[]int    `json:"shape"`
		Offsets *[]uint64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: entry must be {dtype, shape, data_offsets}: %w", key, err)
	}
	if e.DType == nil || e.Shape == nil || e.Offsets == nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: entry lacks dtype, shape or data_offsets: %s", key, v)
	}
	if len(*e.Offsets) != 2 {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets has %d numbers, want 2", key, len(*e.Offsets))
	}
	begin, end := (*e.Offsets)[0], (*e.Offsets)[1]
	if begin > end || end > dataLen {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] outside the %d-byte data buffer", key, begin, end, dataLen)
	}
	want, err := byteLen(*e.DType, *e.Shape, dataLen)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", key, err)
	}
	if want != end-begin {
		return TensorInfo{}, fmt.Errorf("tensor %q: %s %v needs %d bytes, data_offsets [%d, %d] hold %d", key, *e.DType, *e.Shape, want, begin, end, end-begin)
	}
	return TensorInfo{Name: key, DType: *e.DType, Shape: *e.Shape, Begin: int64(begin), End: int64(end)}, nil
}

// checkLayout sorts the tensors by offset and checks that they tile the data
// buffer exactly: no gap, no overlap, nothing after the last one.
func (f *File) checkLayout() error {
	sort.Slice(f.tensors, func(i, j int) bool {
		a, b := f.tensors[i], f.tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var at int64
	for _, t := range f.tensors {
		if t.Begin != at {
			return fmt.Errorf("safetensors %s: tensor %q starts at byte %d of the data buffer, want %d (tensors must tile the buffer)", f.name, t.Name, t.Begin, at)
		}
		at = t.End
	}
	if at != int64(len(f.data)) {
		return fmt.Errorf("safetensors %s: tensors end at byte %d of the %d-byte data buffer", f.name, at, len(f.data))
	}
	return nil
}

// Metadata returns the header's __metadata__ map (nil if absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Tensors returns the descriptions of all tensors in file order.
func (f *File) Tensors() []TensorInfo { return f.tensors }

// Tensor returns the tensor called name with a view of its bytes.
func (f *File) Tensor(name string) (Tensor, error) {
	i, ok := f.index[name]
	if !ok {
		return Tensor{}, fmt.Errorf("safetensors %s: no tensor %q", f.name, name)
	}
	t := f.tensors[i]
	return Tensor{TensorInfo: t, Data: f.data[t.Begin:t.End:t.End]}, nil
}

// Uint16s returns the tensor's elements as uint16 (for BF16, F16, U16, I16),
// a zero-copy view when the bytes are 2-byte aligned on a little-endian host,
// otherwise a decoded copy.
func (t Tensor) Uint16s() ([]uint16, error) {
	if size, _ := t.DType.Size(); size != 2 {
		return nil, fmt.Errorf("tensor %q: dtype %s is not a 16-bit type", t.Name, t.DType)
	}
	n := len(t.Data) / 2
	if n == 0 {
		return []uint16{}, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if littleEndian && uintptr(p)%2 == 0 {
		return unsafe.Slice((*uint16)(p), n), nil
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
	}
	return out, nil
}

// Release drops the resident pages of tensor name's bytes from this process
// (madvise MADV_DONTNEED on the pages they touch, which may be shared with
// its neighbours): a loader that has copied a tensor calls it so the file's
// pages do not stay resident beside the copy. Views stay valid: reading
// them again faults the pages back in from the file. For a File from Parse
// it does nothing.
func (f *File) Release(name string) error {
	i, ok := f.index[name]
	if !ok {
		return fmt.Errorf("safetensors %s: release: no tensor %q", f.name, name)
	}
	if f.mapped == nil {
		return nil
	}
	t := f.tensors[i]
	if t.End == t.Begin {
		return nil
	}
	off := int64(len(f.mapped) - len(f.data)) // the header's bytes before the data buffer
	page := int64(os.Getpagesize())
	begin := (off + t.Begin) / page * page
	end := min((off+t.End+page-1)/page*page, int64(len(f.mapped)))
	if err := unix.Madvise(f.mapped[begin:end], unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("safetensors %s: release %q: madvise: %w", f.name, name, err)
	}
	return nil
}

// Close releases the mapping; tensor views must not be used afterwards.
func (f *File) Close() error {
	if f.mapped == nil {
		return nil
	}
	err := unix.Munmap(f.mapped)
	f.mapped, f.data = nil, nil
	if err != nil {
		return fmt.Errorf("safetensors %s: munmap: %w", f.name, err)
	}
	return nil
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
