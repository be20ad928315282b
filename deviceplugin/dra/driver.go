package dra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/amdxdna"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

// HealthResendInterval is how often the health stream repeats its report when
// nothing changed; the kubelet marks a device's health unknown after 30 s
// without one.
const HealthResendInterval = 10 * time.Second

// Options configure a Driver.
type Options struct {
	// DriverName is the DRA driver name; DefaultDriverName when empty.
	DriverName string
	// NodeName names the node; it is the pool name.
	NodeName string
	// Scanner finds the NPUs (its SysfsRoot and DevRoot as mounted in the
	// driver's container).
	Scanner discovery.Scanner
	// HostDevRoot is the node's /dev as the container runtime sees it ("/dev"
	// when empty): CDI specs name <HostDevRoot>/accel/accelN as host paths.
	HostDevRoot string
	// CDIDir is where per-claim CDI specs are written (config.DefaultCDIDir when empty).
	CDIDir string
	// StateDir holds the checkpoint of prepared claims (the plugin's data
	// directory, kept across driver restarts).
	StateDir string
	// Inventory asks the amdxdna driver; a fresh Inventory over
	// Scanner.SysfsRoot when nil.
	Inventory *amdxdna.Inventory
	// FallbackContexts is the context capacity of an NPU whose driver does not
	// report its limit; DefaultContexts when zero.
	FallbackContexts int
	// Unhealthy says what the slice does with an unhealthy NPU; UnhealthyTaint
	// when empty.
	Unhealthy UnhealthyPolicy
	// Log receives the driver's logs; slog.Default() when nil.
	Log *slog.Logger
}

// Publisher publishes the driver's ResourceSlices; *kubeletplugin.Helper is one.
type Publisher interface {
	PublishResources(ctx context.Context, resources resourceslice.DriverResources) error
}

// Driver implements kubeletplugin.DRAPlugin for XDNA NPUs.
type Driver struct {
	opts Options
	log  *slog.Logger

	// pubMu orders publishing: the resources last handed to the Publisher are published
	// (Update's), never an older copy republished after them.
	pubMu     sync.Mutex
	published *resourceslice.DriverResources

	mu      sync.Mutex
	npus    map[string]NPU // device name → NPU, every NPU discovery knows
	claims  map[types.UID]PreparedClaim
	changed chan struct{} // closed and replaced whenever npus changes
}

var _ kubeletplugin.DRAPlugin = (*Driver)(nil)

// New loads the checkpoint, removes CDI specs of claims it does not list
// (left by a crash between writing the spec and the checkpoint), and returns
// the driver. It knows no NPU until Update or Run.
func New(opts Options) (*Driver, error) {
	if opts.DriverName == "" {
		opts.DriverName = DefaultDriverName
	}
	if opts.CDIDir == "" {
		opts.CDIDir = config.DefaultCDIDir
	}
	if opts.FallbackContexts <= 0 {
		opts.FallbackContexts = DefaultContexts
	}
	if opts.Unhealthy == "" {
		opts.Unhealthy = UnhealthyTaint
	}
	if opts.Unhealthy != UnhealthyRemove && opts.Unhealthy != UnhealthyTaint {
		return nil, fmt.Errorf("unhealthy policy %q: want %q or %q", opts.Unhealthy, UnhealthyRemove, UnhealthyTaint)
	}
	if opts.NodeName == "" {
		return nil, errors.New("node name is required (it names the ResourceSlice pool)")
	}
	if opts.StateDir == "" {
		return nil, errors.New("state directory is required (prepared claims are checkpointed there)")
	}
	if opts.Inventory == nil {
		opts.Inventory = &amdxdna.Inventory{SysfsRoot: opts.Scanner.SysfsRoot}
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	claims, err := loadCheckpoint(filepath.Join(opts.StateDir, CheckpointFile))
	if err != nil {
		return nil, err
	}
	d := &Driver{opts: opts, log: log, npus: map[string]NPU{}, claims: claims, changed: make(chan struct{})}
	if err := d.removeOrphanSpecs(); err != nil {
		return nil, err
	}
	log.Info("checkpoint loaded", "preparedClaims", len(claims))
	return d, nil
}

// Run watches the NPUs (fsnotify and a periodic rescan, as the device plugin
// does) and publishes the slice after every change, and republishes it every
// interval (see republish), until ctx is done.
func (d *Driver) Run(ctx context.Context, pub Publisher, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("rescan interval %v: want a positive period", interval)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.republish(ctx, pub, interval)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	m := &discovery.Monitor{Scanner: d.opts.Scanner, Interval: interval, Log: d.log}
	return m.Run(ctx, func(npus []discovery.NPU) {
		if err := d.Update(ctx, pub, npus); err != nil {
			d.log.Error("publishing ResourceSlice failed", "err", err)
		}
	})
}

// Update takes discovery's NPU list (see Observe), publishes the slice and
// wakes the health streams.
func (d *Driver) Update(ctx context.Context, pub Publisher, found []discovery.NPU) error {
	npus := d.Observe(found)
	res := Resources(d.opts.NodeName, npus, d.opts.Unhealthy, d.opts.DriverName)
	d.log.Info("publishing ResourceSlice", "pool", d.opts.NodeName,
		"devices", len(res.Pools[d.opts.NodeName].Slices[0].Devices), "known", len(npus))
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if err := pub.PublishResources(ctx, res); err != nil {
		return fmt.Errorf("publish ResourceSlice of pool %s: %w", d.opts.NodeName, err)
	}
	d.published = res.DeepCopy()
	return nil
}

// republish hands the last published resources to pub again every interval. A starting
// kubelet deletes every ResourceSlice of its node, and the ResourceSlice controller
// behind kubeletplugin recreates a deleted slice only 30 s after the delete event
// (resourceslice.DefaultSyncDelay, not an option of kubeletplugin): the NPUs could not
// be allocated for that long after each kubelet restart. Handing it the same resources
// makes it sync the pool at once; when the slice is there that costs no API call.
func (d *Driver) republish(ctx context.Context, pub Publisher, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.pubMu.Lock()
		if d.published != nil {
			if err := pub.PublishResources(ctx, *d.published.DeepCopy()); err != nil {
				d.log.Warn("republishing ResourceSlice failed", "pool", d.opts.NodeName, "err", err)
			}
		}
		d.pubMu.Unlock()
	}
}

// Observe takes discovery's NPU list, asks the inventory about each healthy
// NPU (cached; see amdxdna.Inventory), makes it the list claims are prepared
// against and wakes the health streams. It returns the described NPUs.
func (d *Driver) Observe(found []discovery.NPU) []NPU {
	npus := make([]NPU, 0, len(found))
	for _, n := range found {
		npus = append(npus, d.describe(n))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.npus = map[string]NPU{}
	for _, n := range npus {
		d.npus[DeviceName(n.PCIAddress)] = n
	}
	close(d.changed)
	d.changed = make(chan struct{})
	return npus
}

// describe adds the inventory's answers and the context capacity to an NPU.
// Unhealthy NPUs are not queried (their node may be gone): their last answer,
// if any, is kept for the health report, and the inventory forgets them so
// they are asked again once healthy.
func (d *Driver) describe(n discovery.NPU) NPU {
	out := NPU{NPU: n, Contexts: d.opts.FallbackContexts}
	t := amdxdna.Target{
		PCIAddress: n.PCIAddress,
		NodePath:   d.opts.Scanner.NodePath(n.AccelName),
		SysfsDir:   filepath.Join(d.opts.Scanner.ClassDir(), n.AccelName, "device"),
	}
	if !n.Healthy {
		// Ask again when it is back: a driver reload may bring new firmware.
		d.opts.Inventory.Forget(n.PCIAddress)
		d.mu.Lock()
		if old, ok := d.npus[DeviceName(n.PCIAddress)]; ok {
			out.Info, out.Contexts = old.Info, old.Contexts
		}
		d.mu.Unlock()
		return out
	}
	out.Info = d.opts.Inventory.Get(t)
	if out.Info.MaxContexts > 0 {
		out.Contexts = out.Info.MaxContexts
	}
	d.log.Info("NPU inventory", "pci", n.PCIAddress, "device", DeviceName(n.PCIAddress),
		"firmware", out.Info.Firmware, "firmwareFrom", out.Info.FirmwareSource,
		"driverVersion", out.Info.DriverVersion, "aieColumns", out.Info.Columns,
		"contexts", out.Contexts, "contextsInUse", out.Info.ContextsInUse, "queriedAt", out.Info.QueriedAt,
		"notes", strings.Join(out.Info.Notes, "; "))
	return out
}

// HandleError logs background errors of the ResourceSlice controller; they
// are all recoverable there (it retries), so the driver keeps running.
func (d *Driver) HandleError(_ context.Context, err error, msg string) {
	d.log.Error("DRA background error", "msg", msg, "err", err, "recoverable", errors.Is(err, kubeletplugin.ErrRecoverable))
}

// WatchHealthStatus reports every known NPU's health to the kubelet at once,
// after every change, and every HealthResendInterval.
func (d *Driver) WatchHealthStatus(ctx context.Context, reports chan<- kubeletplugin.DeviceHealthReport) error {
	tick := time.NewTicker(HealthResendInterval)
	defer tick.Stop()
	for {
		report, changed := d.healthReport()
		select {
		case <-ctx.Done():
			return nil
		case reports <- report:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// healthReport is the health of every known NPU and the channel closed at the
// next change.
func (d *Driver) healthReport() (kubeletplugin.DeviceHealthReport, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	var r kubeletplugin.DeviceHealthReport
	for _, name := range sortedKeys(d.npus) {
		n := d.npus[name]
		h := kubeletplugin.DeviceHealth{PoolName: d.opts.NodeName, DeviceName: name, LastUpdated: now,
			Health: kubeletplugin.HealthStatusHealthy, HealthCheckTimeout: 3 * HealthResendInterval}
		if !n.Healthy {
			h.Health, h.Message = kubeletplugin.HealthStatusUnhealthy, n.Problem
		}
		r.Devices = append(r.Devices, h)
	}
	return r, d.changed
}
