package main

import (
	"net/http"
	"time"
)

// throttleTick is how often a throttled response sends its next share of bytes.
const throttleTick = 100 * time.Millisecond

// throttled serves h with response bodies sent at most rate bytes per second
// (h unchanged when rate is 0): each tick sends rate·tick bytes and flushes, so
// the client sees steady progress rather than one burst at the end.
func throttled(h http.Handler, rate int) http.Handler {
	if rate == 0 {
		return h
	}
	chunk := max(1, int(int64(rate)*int64(throttleTick)/int64(time.Second)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&slowWriter{ResponseWriter: w, chunk: chunk, next: time.Now()}, r)
	})
}

// slowWriter paces Write in chunks of chunk bytes, one per throttleTick. It hides
// the ResponseWriter's io.ReaderFrom, so io.Copy (and sendfile) cannot bypass it.
type slowWriter struct {
	http.ResponseWriter
	chunk int
	next  time.Time // when the next chunk may go
}

func (s *slowWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		if wait := time.Until(s.next); wait > 0 {
			time.Sleep(wait)
		}
		n := min(s.chunk, len(p)-done)
		m, err := s.ResponseWriter.Write(p[done : done+n])
		done += m
		if err != nil {
			return done, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		s.next = s.next.Add(throttleTick)
		if now := time.Now(); s.next.Before(now.Add(-throttleTick)) {
			s.next = now // a slow reader does not earn a burst later
		}
	}
	return done, nil
}
