package download

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Reporter shows the progress of a long transfer: a bar redrawn in place
// when the output is a terminal, otherwise a structured log line at most
// every Interval. Its Update method fits Options.Progress.
type Reporter struct {
	// Label names the work ("download", "convert").
	Label string
	// TTY selects the bar (written to W) over log lines (to Logger).
	TTY bool
	// W receives the bar.
	W io.Writer
	// Logger receives the log lines (default slog.Default()).
	Logger *slog.Logger
	// Interval is the minimum time between log lines (default 5 s) and bar
	// redraws (a tenth of it).
	Interval time.Duration

	mu          sync.Mutex
	start, last time.Time
	done, total int64
	shown       int64 // done at the last emission, -1 before the first
}

// Update records done of total bytes (total -1 when unknown).
func (r *Reporter) Update(done, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.start.IsZero() {
		r.start, r.last, r.shown = now, now, -1
	}
	r.done, r.total = done, total
	every := r.Interval
	if every <= 0 {
		every = 5 * time.Second
	}
	if r.TTY {
		every /= 10
	}
	if now.Sub(r.last) < every && (done != total || r.TTY) {
		return
	}
	r.emit(now)
}

// Finish draws the final state (and ends the bar's line).
func (r *Reporter) Finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.start.IsZero() {
		return
	}
	if r.shown != r.done {
		r.emit(time.Now())
	}
	if r.TTY {
		fmt.Fprintln(r.W)
	}
}

func (r *Reporter) emit(now time.Time) {
	if r.shown == r.done && !r.TTY {
		return
	}
	r.last, r.shown = now, r.done
	el := now.Sub(r.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(r.done) / el
	}
	eta := time.Duration(-1)
	if r.total > 0 && rate > 0 {
		eta = time.Duration(float64(r.total-r.done) / rate * float64(time.Second)).Round(time.Second)
	}
	if r.TTY {
		fmt.Fprintf(r.W, "\r%-9s %s %s", r.Label, bar(r.done, r.total, 30), summary(r.done, r.total, rate, eta))
		return
	}
	lg := r.Logger
	if lg == nil {
		lg = slog.Default()
	}
	lg.Info(r.Label+" progress", "bytes", r.done, "total", r.total, "rateMBps", fmt.Sprintf("%.1f", rate/1e6), "eta", etaString(eta))
}

func bar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("?", width) + "]"
	}
	fill := int(float64(width) * float64(done) / float64(total))
	fill = min(max(fill, 0), width)
	return "[" + strings.Repeat("=", fill) + strings.Repeat(" ", width-fill) + "]"
}

func summary(done, total int64, rate float64, eta time.Duration) string {
	pct := ""
	if total > 0 {
		pct = fmt.Sprintf("%3.0f%% ", 100*float64(done)/float64(total))
	}
	return fmt.Sprintf("%s%.1f/%s MB %.1f MB/s ETA %s ", pct, float64(done)/1e6, mb(total), rate/1e6, etaString(eta))
}

func mb(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", float64(n)/1e6)
}

func etaString(eta time.Duration) string {
	if eta < 0 {
		return "?"
	}
	return eta.String()
}
