package backend

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPool runs loops from several goroutines at once: every index runs
// exactly once, worker numbers are in range, and no worker number is used by
// two tasks at the same time (per-worker scratch relies on it).
func TestPool(t *testing.T) {
	for _, workers := range []int{1, 2, 3} {
		p := NewPool(workers)
		busy := make([]atomic.Bool, workers)
		var wg sync.WaitGroup
		errs := make(chan string, 64)
		for g := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					n := 1 + g*7
					seen := make([]atomic.Int32, n)
					p.For(n, func(w, i int) {
						if w < 0 || w >= workers {
							errs <- "worker out of range"
							return
						}
						if !busy[w].CompareAndSwap(false, true) {
							errs <- "worker number shared by two running tasks"
							return
						}
						time.Sleep(time.Microsecond)
						busy[w].Store(false)
						seen[i].Add(1)
					})
					for i := range seen {
						if seen[i].Load() != 1 {
							errs <- "an index did not run exactly once"
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		p.Close()
		close(errs)
		for e := range errs {
			t.Fatalf("%d workers: %s", workers, e)
		}
	}
}
