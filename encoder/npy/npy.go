// Package npy reads and writes NumPy .npy files holding little-endian float32
// arrays in C order, the exchange format of log-mel inputs and hidden-state
// outputs (numpy.save / numpy.load).
//
// Format (NEP 1): the magic "\x93NUMPY", a major and minor version byte, a
// header length (uint16 for 1.0, uint32 for 2.0 and 3.0), then an ASCII Python
// dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (a, b), }
// padded with spaces to a multiple of 64 bytes and ended by '\n', then the data.
package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

const magic = "\x93NUMPY"

// maxHeader bounds the header length accepted from a file (NumPy itself caps it
// at 10000 bytes for untrusted input).
const maxHeader = 1 << 16

// Array is a float32 array in C (row-major) order.
type Array struct {
	Shape []int
	Data  []float32
}

// Len is the product of the shape: the number of elements the data must hold.
func (a Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// Write writes a as a version 1.0 .npy file with dtype '<f4'.
func Write(w io.Writer, a Array) error {
	return WriteChunks(w, a.Shape, a.Data)
}

// WriteChunks writes a version 1.0 .npy file with dtype '<f4' whose data is
// the chunks one after the other (say one per window), without joining them
// in memory first.
func WriteChunks(w io.Writer, shape []int, chunks ...[]float32) error {
	a := Array{Shape: shape}
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	if a.Len() != n {
		return fmt.Errorf("npy: shape %v holds %d elements, data has %d", a.Shape, a.Len(), n)
	}
	header := headerFor(a.Shape)
	var pre [10]byte
	copy(pre[:], magic)
	pre[6], pre[7] = 1, 0
	binary.LittleEndian.PutUint16(pre[8:], uint16(len(header)))
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.Write(pre[:]); err != nil {
		return fmt.Errorf("npy: write preamble: %w", err)
	}
	if _, err := bw.WriteString(header); err != nil {
		return fmt.Errorf("npy: write header: %w", err)
	}
	var buf [4]byte
	for _, c := range chunks {
		for _, v := range c {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			if _, err := bw.Write(buf[:]); err != nil {
				return fmt.Errorf("npy: write data: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("npy: write data: %w", err)
	}
	return nil
}

// headerFor builds the padded dict literal for a float32 C-order array.
func headerFor(shape []int) string {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	h := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	// 10 bytes of preamble + header + '\n' must be a multiple of 64.
	pad := 64 - (10+len(h)+1)%64
	if pad == 64 {
		pad = 0
	}
	return h + strings.Repeat(" ", pad) + "\n"
}

// Read reads a .npy file holding a little-endian float32 C-order array. maxElems
// bounds the element count accepted (0 means no bound beyond what fits in memory);
// the data is read incrementally so a header that lies about its size fails with
// io.ErrUnexpectedEOF before a huge buffer is allocated.
func Read(r io.Reader, maxElems int) (Array, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	shape, err := readHeader(br)
	if err != nil {
		return Array{}, err
	}
	n := 1
	for _, d := range shape {
		if d != 0 && n > math.MaxInt32/d {
			return Array{}, fmt.Errorf("npy: shape %v: element count overflows", shape)
		}
		n *= d
	}
	if maxElems > 0 && n > maxElems {
		return Array{}, fmt.Errorf("npy: shape %v holds %d elements, limit is %d", shape, n, maxElems)
	}
	data := make([]float32, 0, min(n, 1<<20))
	var buf [4096]byte
	for len(data) < n {
		want := min(len(buf), 4*(n-len(data)))
		if _, err := io.ReadFull(br, buf[:want]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Array{}, fmt.Errorf("npy: data for shape %v: got %d of %d elements: %w", shape, len(data), n, err)
		}
		for i := 0; i < want; i += 4 {
			data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(buf[i:])))
		}
	}
	return Array{Shape: shape, Data: data}, nil
}

// readHeader parses the preamble and dict, returning the shape.
func readHeader(br *bufio.Reader) ([]int, error) {
	var pre [8]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: reading preamble: %w", err)
	}
	if string(pre[:6]) != magic {
		return nil, fmt.Errorf("npy: not a .npy file: magic %q, want %q", pre[:6], magic)
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("npy: format version %d.%d not supported (want 1.0, 2.0 or 3.0)", pre[6], pre[7])
	}
	if hlen > maxHeader {
		return nil, fmt.Errorf("npy: header length %d exceeds %d", hlen, maxHeader)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(br, h); err != nil {
		return nil, fmt.Errorf("npy: reading %d-byte header: %w", hlen, err)
	}
	return parseDict(string(h))
}

// parseDict extracts and checks 'descr', 'fortran_order' and 'shape'.
func parseDict(h string) ([]int, error) {
	descr, err := dictValue(h, "descr")
	if err != nil {
		return nil, err
	}
	descr = strings.Trim(descr, `'"`)
	if descr != "<f4" && descr != "float32" {
		return nil, fmt.Errorf("npy: dtype %q not supported: want little-endian float32 '<f4'", descr)
	}
	fo, err := dictValue(h, "fortran_order")
	if err != nil {
		return nil, err
	}
	if fo != "False" {
		return nil, fmt.Errorf("npy: fortran_order %s not supported: want a C-order array", fo)
	}
	s, err := dictValue(h, "shape")
	if err != nil {
		return nil, err
	}
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "(") || !strings.HasSuffix(s, ")") {
		return nil, fmt.Errorf("npy: shape %q is not a tuple", s)
	}
	var shape []int
	for _, f := range strings.Split(s[1:len(s)-1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(strings.TrimSuffix(f, "L"))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("npy: shape %s: bad dimension %q", s, f)
		}
		shape = append(shape, d)
	}
	return shape, nil
}

// dictValue returns the raw text of key's value in a flat Python dict literal.
// Tuples are the only nested values in .npy headers, so a value ends at the
// first comma outside parentheses.
func dictValue(h, key string) (string, error) {
	i := strings.Index(h, "'"+key+"'")
	if i < 0 {
		i = strings.Index(h, `"`+key+`"`)
	}
	if i < 0 {
		return "", fmt.Errorf("npy: header has no %q: %q", key, h)
	}
	rest := h[i+len(key)+2:]
	colon := strings.IndexByte(rest, ':')
	if colon < 0 {
		return "", fmt.Errorf("npy: header key %q has no value", key)
	}
	rest = rest[colon+1:]
	depth := 0
	for j, c := range rest {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',', '}':
			if depth == 0 {
				return strings.TrimSpace(rest[:j]), nil
			}
		}
	}
	return "", fmt.Errorf("npy: header value of %q is not terminated", key)
}
