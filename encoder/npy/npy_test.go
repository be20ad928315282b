package npy

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, shape := range [][]int{{3}, {2, 3}, {1, 80, 7}, {0, 4}} {
		a := Array{Shape: shape}
		for i := 0; i < a.Len(); i++ {
			a.Data = append(a.Data, float32(i)*0.5-1)
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatal(err)
		}
		if (buf.Len()-4*a.Len())%64 != 0 {
			t.Errorf("shape %v: header not padded to 64 bytes (file %d bytes)", shape, buf.Len())
		}
		b, err := Read(&buf, 0)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if len(b.Shape) != len(shape) || b.Len() != a.Len() {
			t.Fatalf("shape %v: read back %v", shape, b.Shape)
		}
		for i := range a.Data {
			if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
				t.Fatalf("shape %v: element %d = %v, want %v", shape, i, b.Data[i], a.Data[i])
			}
		}
	}
}

// numpySaved is np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3)) as
// written by NumPy 1.24.
var numpySaved = "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
	strings.Repeat(" ", 58) + "\n" +
	"\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x00\x00\xa0\x40"

func TestReadNumPyFile(t *testing.T) {
	a, err := Read(strings.NewReader(numpySaved), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 || a.Shape[0] != 2 || a.Shape[1] != 3 {
		t.Fatalf("shape %v, want [2 3]", a.Shape)
	}
	for i, v := range a.Data {
		if v != float32(i) {
			t.Fatalf("element %d = %v, want %d", i, v, i)
		}
	}
	var buf bytes.Buffer
	if err := Write(&buf, a); err != nil {
		t.Fatal(err)
	}
	if buf.String() != numpySaved {
		t.Errorf("Write differs from NumPy's file:\n got %q\nwant %q", buf.String(), numpySaved)
	}
}

func TestReadErrors(t *testing.T) {
	h := func(dict string) string {
		return "\x93NUMPY\x01\x00" + string([]byte{byte(len(dict)), 0}) + dict
	}
	cases := []struct{ name, in, want string }{
		{"empty", "", "preamble"},
		{"magic", "PK\x03\x04zipfile", "not a .npy file"},
		{"version", "\x93NUMPY\x09\x00\x00\x00", "version 9.0"},
		{"dtype", h("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }"), `dtype "<f8"`},
		{"fortran", h("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"), "fortran_order"},
		{"shape", h("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }"), "bad dimension"},
		{"short data", h("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }") + "\x00\x00\x00\x00", "got 0 of 2"},
		{"huge shape", h("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"), "overflows"},
	}
	for _, c := range cases {
		_, err := Read(strings.NewReader(c.in), 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := Read(strings.NewReader(numpySaved), 5); err == nil || !strings.Contains(err.Error(), "limit is 5") {
		t.Errorf("maxElems: error %v", err)
	}
}

// FuzzRead feeds arbitrary bytes to the .npy reader (what the server runs on
// a log-mel body): it must return an error or an array whose data matches
// its shape, never panic or allocate past its element limit.
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	if err := Write(&buf, Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data), 1<<16)
		if err != nil {
			return
		}
		if a.Len() != len(a.Data) || len(a.Data) > 1<<16 {
			t.Fatalf("shape %v with %d values", a.Shape, len(a.Data))
		}
	})
}
