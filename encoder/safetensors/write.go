package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// Layout is the header of a file being written: where each declared tensor's
// bytes go.
type Layout struct {
	// Header is the 8-byte length plus the JSON header, padded with spaces so
	// the data buffer starts on an 8-byte boundary.
	Header []byte
	// Tensors are the declared tensors with their offsets in the data buffer,
	// in declaration order.
	Tensors []TensorInfo
}

// DataOffset is the file offset of the data buffer (the header's length).
func (l Layout) DataOffset() int64 { return int64(len(l.Header)) }

// Size is the total file size.
func (l Layout) Size() int64 {
	if len(l.Tensors) == 0 {
		return l.DataOffset()
	}
	return l.DataOffset() + l.Tensors[len(l.Tensors)-1].End
}

// Plan lays out the declared tensors (Name, DType and Shape set; offsets are
// assigned here, in declaration order) and builds the header with metadata.
func Plan(tensors []TensorInfo, metadata map[string]string) (Layout, error) {
	entries := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		entries[metadataKey] = metadata
	}
	out := make([]TensorInfo, len(tensors))
	var at uint64
	for i, t := range tensors {
		if t.Name == metadataKey {
			return Layout{}, fmt.Errorf("safetensors: tensor name %q is reserved", t.Name)
		}
		if _, dup := entries[t.Name]; dup {
			return Layout{}, fmt.Errorf("safetensors: tensor %q declared twice", t.Name)
		}
		n, err := byteLen(t.DType, t.Shape, math.MaxInt64)
		if err != nil {
			return Layout{}, fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		out[i] = TensorInfo{Name: t.Name, DType: t.DType, Shape: shape, Begin: int64(at), End: int64(at + n)}
		entries[t.Name] = struct {
			DType   DType     `json:"dtype"`
			Shape   []int     `json:"shape"`
			Offsets [2]uint64 `json:"data_offsets"`
		}{t.DType, shape, [2]uint64{at, at + n}}
		at += n
	}
	js, err := json.Marshal(entries)
	if err != nil {
		return Layout{}, fmt.Errorf("safetensors: header: %w", err)
	}
	pad := (8 - len(js)%8) % 8
	h := make([]byte, 8, 8+len(js)+pad)
	h = append(h, js...)
	for range pad {
		h = append(h, ' ')
	}
	binary.LittleEndian.PutUint64(h, uint64(len(h)-8))
	return Layout{Header: h, Tensors: out}, nil
}

// Writer streams a safetensors file: the header first, then each declared
// tensor's bytes in declaration order.
type Writer struct {
	w      io.Writer
	layout Layout
	next   int   // index of the tensor being written
	done   int64 // bytes of it written so far
}

// NewWriter plans the layout and writes the header to w.
func NewWriter(w io.Writer, tensors []TensorInfo, metadata map[string]string) (*Writer, error) {
	l, err := Plan(tensors, metadata)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(l.Header); err != nil {
		return nil, fmt.Errorf("safetensors: write header: %w", err)
	}
	return &Writer{w: w, layout: l}, nil
}

// Layout returns the planned layout.
func (w *Writer) Layout() Layout { return w.layout }

// Write writes the next bytes of the current tensor; one tensor's bytes may
// come in several calls, and a call may not cross into the next tensor.
func (w *Writer) Write(p []byte) (int, error) {
	for w.next < len(w.layout.Tensors) && w.size(w.next) == 0 {
		w.next++
	}
	if w.next >= len(w.layout.Tensors) {
		return 0, fmt.Errorf("safetensors: %d bytes written after the last declared tensor", len(p))
	}
	t := w.layout.Tensors[w.next]
	if left := w.size(w.next) - w.done; int64(len(p)) > left {
		return 0, fmt.Errorf("safetensors: tensor %q: write of %d bytes, %d left", t.Name, len(p), left)
	}
	n, err := w.w.Write(p)
	w.done += int64(n)
	if err != nil {
		return n, fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
	}
	if w.done == w.size(w.next) {
		w.next++
		w.done = 0
	}
	return n, nil
}

func (w *Writer) size(i int) int64 { return w.layout.Tensors[i].End - w.layout.Tensors[i].Begin }

// Close checks that every declared tensor was written in full. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	for w.next < len(w.layout.Tensors) && w.size(w.next) == 0 {
		w.next++
	}
	if w.next < len(w.layout.Tensors) {
		t := w.layout.Tensors[w.next]
		return fmt.Errorf("safetensors: tensor %q: %d of %d bytes written", t.Name, w.done, w.size(w.next))
	}
	return nil
}
