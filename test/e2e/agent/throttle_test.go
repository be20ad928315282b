package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// chunkRecorder records the size of every write and counts flushes.
type chunkRecorder struct {
	*httptest.ResponseRecorder
	writes  []int
	flushes int
}

func (c *chunkRecorder) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return c.ResponseRecorder.Write(p)
}

func (c *chunkRecorder) Flush() { c.flushes++ }

func TestThrottledSendsInFlushedChunks(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 450) // 4500 bytes
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.Copy(w, bytes.NewReader(body)) // would use ReaderFrom if the writer offered it
	})
	tests := []struct {
		rate       int
		wantChunks int // writes reaching the client
	}{
		{0, 1},      // unthrottled: the handler's own single copy
		{10000, 5},  // 1000 bytes a tick
		{30000, 2},  // 3000 bytes a tick
		{100000, 1}, // a tick's share exceeds the body
	}
	for _, tt := range tests {
		rec := &chunkRecorder{ResponseRecorder: httptest.NewRecorder()}
		throttled(h, tt.rate).ServeHTTP(rec, httptest.NewRequest("GET", "/files/x", nil))
		if !bytes.Equal(rec.Body.Bytes(), body) {
			t.Errorf("rate %d: body of %d bytes arrived as %d bytes", tt.rate, len(body), rec.Body.Len())
		}
		if len(rec.writes) != tt.wantChunks {
			t.Errorf("rate %d: %d writes %v, want %d", tt.rate, len(rec.writes), rec.writes, tt.wantChunks)
		}
		if tt.rate > 0 && rec.flushes != len(rec.writes) {
			t.Errorf("rate %d: %d flushes for %d writes, want one each", tt.rate, rec.flushes, len(rec.writes))
		}
		for _, n := range rec.writes {
			if limit := tt.rate / 10; tt.rate > 0 && n > limit {
				t.Errorf("rate %d: a write of %d bytes, want ≤ %d per tick", tt.rate, n, limit)
			}
		}
	}
}

func TestServeRejectsNegativeRate(t *testing.T) {
	err := run(t.Context(), []string{"serve", "-rate", "-1"})
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), "-rate -1") {
		t.Errorf("serve -rate -1: %v, want a usage error naming the rate", err)
	}
}
