package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long the Monitor waits after a filesystem event before it scans,
// so that a burst of events (mknod, chmod, symlinks) costs one scan.
const settle = 5 * time.Millisecond

// Monitor rescans on fsnotify events under the dev and sysfs roots and on a
// period, and publishes the NPU list whenever it changes. Real sysfs sends no
// inotify events when the kernel adds or unbinds devices, so the period is what
// catches a driver unbind on a host; devtmpfs does send events, so a node that
// disappears or comes back is seen at once.
type Monitor struct {
	// Scanner reads the trees.
	Scanner Scanner
	// Interval is the rescan period; it must be positive.
	Interval time.Duration
	// Log receives warnings and health changes; slog.Default() when nil.
	Log *slog.Logger
}

// Run publishes the NPU list once at the start and then after every change,
// until ctx is done. publish runs on Run's goroutine and must not block for long.
func (m *Monitor) Run(ctx context.Context, publish func([]NPU)) error {
	log := m.Log
	if log == nil {
		log = slog.Default()
	}
	interval := m.Interval
	if interval <= 0 {
		return fmt.Errorf("rescan interval %v: want a positive period", interval)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("start watching %s and %s: %w", m.Scanner.DevRoot, m.Scanner.SysfsRoot, err)
	}
	defer w.Close()

	tracker := NewTracker()
	var last []NPU
	scan := func() {
		obs, err := m.Scanner.Scan()
		if err != nil {
			log.Warn("scan failed; keeping the last device list", "err", err)
			return
		}
		npus := tracker.Update(obs)
		m.watch(w, tracker)
		if last != nil && reflect.DeepEqual(npus, last) {
			return
		}
		logChanges(log, last, npus)
		last = npus
		publish(npus)
	}
	scan()

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	pending := time.NewTimer(time.Hour)
	pending.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			scan()
		case <-w.Events:
			pending.Reset(settle)
		case err := <-w.Errors:
			log.Warn("filesystem watch error; relying on periodic rescans", "err", err)
			pending.Reset(settle)
		case <-pending.C:
			scan()
		}
	}
}

// watch (re)adds every directory whose changes can alter the device list: the
// dev root and its accel directory, sysfs class/accel, and each known PCI
// device's directory (where its driver link lives). Paths that do not exist yet
// are retried after the next scan; a watch on a removed directory disappears by
// itself.
func (m *Monitor) watch(w *fsnotify.Watcher, t *Tracker) {
	dirs := []string{
		m.Scanner.DevRoot,
		filepath.Join(m.Scanner.DevRoot, "accel"),
		filepath.Join(m.Scanner.SysfsRoot, "class"),
		m.Scanner.ClassDir(),
	}
	have := map[string]bool{}
	for _, d := range w.WatchList() {
		have[d] = true
	}
	for _, d := range append(dirs, t.PCIDirs()...) {
		if !have[d] {
			_ = w.Add(d) // absent for now: picked up on a later scan
		}
	}
}

// logChanges logs NPUs that appeared or changed health.
func logChanges(log *slog.Logger, before, after []NPU) {
	old := map[string]NPU{}
	for _, n := range before {
		old[n.PCIAddress] = n
	}
	for _, n := range after {
		o, seen := old[n.PCIAddress]
		switch {
		case !seen:
			log.Info("NPU discovered", "pci", n.PCIAddress, "node", n.DevicePath, "family", n.Family,
				"numa", n.NUMANode, "firmware", n.Firmware, "healthy", n.Healthy, "problem", n.Problem)
		case o.Healthy && !n.Healthy:
			log.Warn("NPU unhealthy", "pci", n.PCIAddress, "problem", n.Problem)
		case !o.Healthy && n.Healthy:
			log.Info("NPU healthy again", "pci", n.PCIAddress, "node", n.DevicePath)
		}
	}
}
