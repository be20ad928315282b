package safetensors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// mappedRSS is the resident size, in bytes, of this process's mapping that
// starts at addr (its Rss line in /proc/self/smaps).
func mappedRSS(t *testing.T, addr uintptr) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps (%v): resident pages cannot be read here", err)
	}
	start := fmt.Sprintf("%x-", addr)
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = strings.HasPrefix(f[0], start)
			continue
		}
		if f := strings.Fields(line); in && len(f) == 3 && f[0] == "Rss:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping at %#x in /proc/self/smaps", addr)
	return 0
}

// TestReleaseDropsResidentPages reads every tensor of a 4 MiB file, releases
// them and checks that the mapping's resident pages went while the views
// still read the file's bytes.
func TestReleaseDropsResidentPages(t *testing.T) {
	const n = 1 << 20 // elements of each F32 tensor: 4 MiB in all
	tensors := []TensorInfo{{Name: "a", DType: F32, Shape: []int{n / 2}}, {Name: "b", DType: F32, Shape: []int{n / 2}}}
	data := [][]byte{bytes.Repeat([]byte{1, 2, 3, 4}, n/2), bytes.Repeat([]byte{5, 6, 7, 8}, n/2)}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := os.WriteFile(path, writeFile(t, tensors, data, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapped)))
	sum := 0
	for _, tn := range tensors {
		v, _ := f.Tensor(tn.Name)
		for _, x := range v.Data {
			sum += int(x)
		}
	}
	if sum != n/2*(10+26) {
		t.Fatalf("sum of the bytes %d, want %d", sum, n/2*(10+26))
	}
	if got := mappedRSS(t, addr); got < 4<<20 {
		t.Fatalf("after reading every tensor the mapping has %d bytes resident, want ≥ 4 MiB", got)
	}
	for _, tn := range tensors {
		if err := f.Release(tn.Name); err != nil {
			t.Fatal(err)
		}
	}
	if got := mappedRSS(t, addr); got > 0 {
		t.Errorf("after releasing every tensor the mapping has %d bytes resident, want 0", got)
	}
	for i, tn := range tensors {
		if v, _ := f.Tensor(tn.Name); !bytes.Equal(v.Data, data[i]) {
			t.Errorf("tensor %s reads other bytes after Release", tn.Name)
		}
	}
	if err := f.Release("missing"); err == nil || !strings.Contains(err.Error(), `no tensor "missing"`) {
		t.Errorf("Release of a missing tensor: error %v, want one naming it", err)
	}
}
