package main

import (
	"runtime"
	"sync"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
)

// syncProgress serializes calls from the stager's concurrent workers.
func syncProgress(f func(convert.Progress)) func(convert.Progress) {
	var mu sync.Mutex
	return func(p convert.Progress) {
		mu.Lock()
		defer mu.Unlock()
		f(p)
	}
}

// numCPU is the number of CPUs the process may use.
func numCPU() int { return runtime.GOMAXPROCS(0) }
