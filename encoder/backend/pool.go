package backend

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool runs parallel loops on a fixed number of workers. Each worker number
// is a token: a loop's caller takes one and runs tasks itself, and hands any
// other free tokens to helper goroutines, so per-worker scratch indexed by
// the worker number is never shared by two running tasks, and a one-worker
// pool runs every loop on the caller's goroutine. It is safe for concurrent
// use: loops submitted by different goroutines share the tokens.
type Pool struct {
	workers int
	ids     chan int  // free worker numbers
	wake    chan help // to the helper goroutines
	once    sync.Once
}

type job struct {
	n    int
	next atomic.Int64
	f    func(worker, i int)
	wg   sync.WaitGroup // the helpers
}

type help struct {
	j  *job
	id int
}

// NewPool makes a pool of n workers (GOMAXPROCS when n ≤ 0). Close stops
// its helper goroutines.
func NewPool(n int) *Pool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Pool{workers: n, ids: make(chan int, n), wake: make(chan help, n)}
	for w := range n {
		p.ids <- w
	}
	for range n - 1 {
		go p.helper()
	}
	return p
}

// Workers is the number of workers.
func (p *Pool) Workers() int { return p.workers }

func (p *Pool) helper() {
	for h := range p.wake {
		h.j.run(h.id)
		p.ids <- h.id
		h.j.wg.Done()
	}
}

func (j *job) run(worker int) {
	for {
		i := int(j.next.Add(1) - 1)
		if i >= j.n {
			return
		}
		j.f(worker, i)
	}
}

// For runs f(worker, i) for every i in [0, n) and returns when all have
// finished. worker is in [0, Workers()); the caller runs as one of them.
func (p *Pool) For(n int, f func(worker, i int)) {
	if n <= 0 {
		return
	}
	j := &job{n: n, f: f}
	id := <-p.ids
	for extra := min(n, p.workers) - 1; extra > 0; extra-- {
		select {
		case h := <-p.ids:
			j.wg.Add(1)
			p.wake <- help{j, h}
			continue
		default:
		}
		break // the other workers are busy with other loops
	}
	j.run(id)
	p.ids <- id
	j.wg.Wait()
}

// Close stops the helper goroutines; the pool must not be used afterwards.
func (p *Pool) Close() { p.once.Do(func() { close(p.wake) }) }
