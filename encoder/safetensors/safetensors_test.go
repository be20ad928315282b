package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, tensors []TensorInfo, data [][]byte, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		// write in two pieces to exercise chunked writes
		half := len(d) / 2
		if _, err := w.Write(d[:half]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(d[half:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	tensors := []TensorInfo{
		{Name: "a.weight", DType: BF16, Shape: []int{2, 3}},
		{Name: "scalar", DType: F32, Shape: nil},
		{Name: "empty", DType: BF16, Shape: []int{0, 4}},
		{Name: "b", DType: U8, Shape: []int{3}},
	}
	data := [][]byte{
		{1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0},
		{0, 0, 0x80, 0x3f},
		{},
		{7, 8, 9},
	}
	b := writeFile(t, tensors, data, map[string]string{"format": "pt"})
	if n := binary.LittleEndian.Uint64(b); (8+n)%8 != 0 {
		t.Errorf("data buffer starts at %d, want a multiple of 8", 8+n)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata()["format"]; got != "pt" {
		t.Errorf("metadata format = %q", got)
	}
	if len(f.Tensors()) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors()), len(tensors))
	}
	for i, want := range tensors {
		got, err := f.Tensor(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != want.DType || len(got.Shape) != len(want.Shape) || !bytes.Equal(got.Data, data[i]) {
			t.Errorf("tensor %s = %+v %v, want %+v %v", want.Name, got.TensorInfo, got.Data, want, data[i])
		}
	}
	a, _ := f.Tensor("a.weight")
	u, err := a.Uint16s()
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{1, 2, 3, 4, 5, 6}; !equal(u, want) {
		t.Errorf("Uint16s = %v, want %v", u, want)
	}
	if _, err := f.Tensor("missing"); err == nil || !strings.Contains(err.Error(), `no tensor "missing"`) {
		t.Errorf("missing tensor error = %v", err)
	}
	bt, _ := f.Tensor("b")
	if _, err := bt.Uint16s(); err == nil {
		t.Error("Uint16s on U8 tensor: no error")
	}
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func withHeader(h string, data int) []byte {
	b := make([]byte, 8, 8+len(h)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(h)))
	b = append(b, h...)
	return append(b, make([]byte, data)...)
}

func TestParseErrors(t *testing.T) {
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "want at least 8"},
		{"header beyond file", withHeader(`{}`, 0)[:9], "exceeds the 1 bytes after it"},
		{"header over limit", huge, "exceeds the limit"},
		{"not json", withHeader(`hello`, 0), "not a JSON object"},
		{"bad dtype", withHeader(`{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}`, 1), `unknown dtype "Q7"`},
		{"missing field", withHeader(`{"a":{"dtype":"F32","shape":[1]}}`, 4), "lacks dtype, shape or data_offsets"},
		{"size mismatch", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 8), "needs 8 bytes, data_offsets [0, 4] hold 4"},
		{"offsets outside", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "outside the 4-byte data buffer"},
		{"reversed offsets", withHeader(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, 4), "outside"},
		{"overflowing shape", withHeader(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4), "needs more than 4 bytes"},
		{"negative dim", withHeader(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "negative dimension"},
		{"gap", withHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 4), "starts at byte 2"},
		{"overlap", withHeader(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 4), "want 4"},
		{"trailing bytes", withHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 4), "end at byte 2 of the 4-byte"},
		{"bad metadata", withHeader(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.safetensors", tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "x.safetensors") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestWriterErrors(t *testing.T) {
	if _, err := Plan([]TensorInfo{{Name: "a", DType: F32}, {Name: "a", DType: F32}}, nil); err == nil {
		t.Error("duplicate name accepted")
	}
	if _, err := Plan([]TensorInfo{{Name: "__metadata__", DType: F32}}, nil); err == nil {
		t.Error("reserved name accepted")
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []TensorInfo{{Name: "a", DType: U8, Shape: []int{2}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte{1, 2, 3}); err == nil {
		t.Error("overlong write accepted")
	}
	if _, err := w.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "1 of 2 bytes") {
		t.Errorf("Close of short tensor = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(withHeader(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, 4))
	f.Add(withHeader(`{"__metadata__":{"format":"pt"}}`, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := Parse("fuzz", b)
		if err != nil {
			return
		}
		for _, ti := range sf.Tensors() {
			tt, err := sf.Tensor(ti.Name)
			if err != nil || int64(len(tt.Data)) != ti.End-ti.Begin {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
		}
	})
}
