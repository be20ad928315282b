package model

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentEncode calls Encode from several goroutines at once (run
// with -race): every result equals the sequential one, bit for bit.
func TestConcurrentEncode(t *testing.T) {
	dir := stageONNX(t, filepath.Join(repo, "testdata/models/tiny-op14.onnx"))
	e, err := Load(dir, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := readNPY(t, filepath.Join(repo, "testdata/golden/tiny_in_b3.npy"))
	per := in.Shape[1] * in.Shape[2]
	windows := make([]Tensor, 3)
	want := make([]Tensor, 3)
	for i := range windows {
		windows[i] = Tensor{Shape: []int{1, in.Shape[1], in.Shape[2]}, Data: in.Data[i*per : (i+1)*per]}
		if want[i], err = e.Encode(context.Background(), windows[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 4 {
				i := (g + r) % 3
				got, err := e.Encode(context.Background(), windows[i])
				if err != nil {
					errs <- err
					return
				}
				for j := range got.Data {
					if got.Data[j] != want[i].Data[j] {
						errs <- fmt.Errorf("goroutine %d window %d: value %d = %g, sequential %g", g, i, j, got.Data[j], want[i].Data[j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
