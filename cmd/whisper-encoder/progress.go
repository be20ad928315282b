package main

import (
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
