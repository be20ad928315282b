package backend

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
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

// TestPoolSlowHelper has the helper's task outlast the spin window, so
// the caller parks until the helper wakes it; between rounds the helpers
// park, so each hand-off wakes one (or its tasks are taken back).
func TestPoolSlowHelper(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	for round := range 3 {
		caller := p.free[len(p.free)-1] // the token For takes first
		var started atomic.Bool
		errs := make(chan string, 2)
		p.For(2, func(w, _ int) {
			if w != caller {
				started.Store(true)
				time.Sleep(20 * spinWindow)
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for !started.Load() { // the other task runs on the helper
				if time.Now().After(deadline) {
					errs <- "the helper did not start a task"
					return
				}
				time.Sleep(10 * time.Microsecond)
			}
		})
		close(errs)
		for e := range errs {
			t.Fatalf("round %d: %s", round, e)
		}
		waitParked(t, p)
		p.For(2, func(int, int) {}) // probably taken back from a parked helper
	}
}

// TestPoolIdleSleeps checks that an idle pool goes to sleep: after a burst
// of loops every helper parks within the spin window, and then the process
// stops burning CPU time.
func TestPoolIdleSleeps(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	var sum atomic.Int64
	for range 1000 {
		p.For(6, func(_, i int) { sum.Add(int64(i)) })
	}
	waitParked(t, p)
	const window = 50 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		c0 := processCPU()
		time.Sleep(window)
		used := processCPU() - c0
		if used < window/5 { // three spinning helpers would use 3×window
			t.Logf("idle pool: the process used %v of CPU in %v", used, window)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle pool: the process still uses %v of CPU per %v", used, window)
		}
	}
}

// waitParked waits until every helper of p has parked.
func waitParked(t *testing.T, p *Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w := range p.helpers {
		for p.helpers[w].state.Load() != parked {
			if time.Now().After(deadline) {
				t.Fatalf("helper %d did not park", w)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// BenchmarkPoolFor times loops of tiny tasks back to back: the pool's own
// cost per loop (hand-off, wake-up, completion), as a decode step's many
// short loops pay it.
func BenchmarkPoolFor(b *testing.B) {
	for _, tasks := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("tasks%d", tasks), func(b *testing.B) {
			p := NewPool(0)
			defer p.Close()
			sums := make([]float64, p.Workers()*8)
			cpu0 := processCPU()
			for b.Loop() {
				p.For(tasks, func(w, i int) {
					for k := range 200 { // ~0.2 µs
						sums[w*8] += float64(k ^ i)
					}
				})
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the user+system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
