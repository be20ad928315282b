// Package plugin is the kubelet device-plugin side of xdna-device-plugin: the
// v1beta1 DevicePlugin gRPC service (ListAndWatch, Allocate,
// GetPreferredAllocation), registration with the kubelet, and re-registration
// whenever the kubelet restarts, the plugin's socket disappears or the
// ListAndWatch stream ends.
package plugin

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/metrics"
)

// Env names set in every container that gets NPUs.
const (
	// EnvDevices is the comma-separated list of the container's NPU device paths.
	EnvDevices = "XDNA_DEVICES"
	// EnvPCIAddresses is the comma-separated list of their PCI bus addresses.
	EnvPCIAddresses = "XDNA_PCI_ADDRESSES"
)

// Options configure one Plugin, which serves one resource (one NPU family).
type Options struct {
	// ResourceName is the extended resource, e.g. "amd.com/npu".
	ResourceName string
	// Family selects the NPUs this resource advertises.
	Family discovery.Family
	// PluginDir is the kubelet's device-plugin directory holding kubelet.sock.
	PluginDir string
	// ContextsPerNPU is the number of slots advertised per NPU (1 = no sharing).
	ContextsPerNPU int
	// Policy picks among shared slots (Spread when empty).
	Policy Policy
	// CDI adds CDI device names "<ResourceName>=<PCI address>" to allocations.
	CDI bool
	// HostDevRoot is the node's /dev as the container runtime sees it ("/dev" when
	// empty): allocations name <HostDevRoot>/accel/accelN as each node's host path.
	HostDevRoot string
	// MinBackoff and MaxBackoff bound the wait between failed registrations
	// (50 ms and 5 s when zero).
	MinBackoff, MaxBackoff time.Duration
	// Metrics records registrations, streams and allocations; may be nil.
	Metrics *metrics.Metrics
	// Log receives the plugin's logs; slog.Default() when nil.
	Log *slog.Logger
}

// Plugin serves one resource to the kubelet. Update feeds it the NPU list; Run
// serves and keeps it registered.
type Plugin struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	inv     inventory
	changed chan struct{} // closed and replaced on every Update
	streams int           // ListAndWatch streams opened so far

	reg registration // owned by Run's goroutine, read under mu via Registered
}

// New checks the options and returns a Plugin that advertises no NPU until the
// first Update.
func New(opts Options) (*Plugin, error) {
	if !strings.Contains(opts.ResourceName, "/") || strings.HasPrefix(opts.ResourceName, "kubernetes.io/") {
		return nil, fmt.Errorf("resource name %q: want a vendor-qualified extended resource such as amd.com/npu", opts.ResourceName)
	}
	if opts.ContextsPerNPU < 1 {
		return nil, fmt.Errorf("%s: contexts per NPU %d, want at least 1", opts.ResourceName, opts.ContextsPerNPU)
	}
	if opts.Policy == "" {
		opts.Policy = Spread
	}
	if opts.Policy != Spread && opts.Policy != Pack {
		return nil, fmt.Errorf("%s: allocation policy %q, want %q or %q", opts.ResourceName, opts.Policy, Spread, Pack)
	}
	if !filepath.IsAbs(opts.PluginDir) {
		return nil, fmt.Errorf("%s: plugin directory %q is not an absolute path", opts.ResourceName, opts.PluginDir)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 50 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Second, opts.MinBackoff)
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	return &Plugin{
		opts:    opts,
		log:     log.With("resource", opts.ResourceName),
		inv:     newInventory(nil, opts.ContextsPerNPU),
		changed: make(chan struct{}),
	}, nil
}

// ResourceName is the resource the plugin serves.
func (p *Plugin) ResourceName() string { return p.opts.ResourceName }

// Update replaces the advertised NPUs with those of the plugin's family in npus
// and wakes every ListAndWatch stream.
func (p *Plugin) Update(npus []discovery.NPU) {
	mine := discovery.OfFamily(npus, p.opts.Family)
	p.mu.Lock()
	p.inv = newInventory(mine, p.opts.ContextsPerNPU)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// snapshot returns the current inventory and the channel closed on its next change.
func (p *Plugin) snapshot() (inventory, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inv, p.changed
}

// Registered reports whether the plugin is currently registered with a kubelet.
func (p *Plugin) Registered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reg.done
}

// SocketPrefix is the start of the plugin's socket names in the plugin
// directory: the resource name with '/' replaced, e.g. "amd.com_npu". Each
// serving generation listens on "<prefix>-<n>.sock".
func (p *Plugin) SocketPrefix() string {
	return strings.ReplaceAll(p.opts.ResourceName, "/", "_")
}
