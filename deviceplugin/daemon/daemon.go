// Package daemon runs the whole xdna-device-plugin from its configuration: the
// discovery Monitor, one kubelet device plugin per advertised resource, the CDI
// spec, the NFD feature file, and the HTTP endpoints /metrics, /healthz and
// /readyz. Every NPU list the Monitor publishes fans out to all of them.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/amdxdna"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/cdi"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/metrics"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/nfd"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/plugin"
)

// daemon holds the running parts.
type daemon struct {
	cfg       config.Config
	log       *slog.Logger
	resources []nfd.Resource
	metrics   *metrics.Metrics
	plugins   []*plugin.Plugin
	scanner   discovery.Scanner
	inventory *amdxdna.Inventory

	mu       sync.Mutex
	scanned  bool
	npus     []discovery.NPU // the last list published
	nfdText  string
	cdiSpecs map[string]string // resource → last spec written
}

// Run runs the daemon configured by cfg (already validated by config.Parse)
// until ctx is done, then removes the NFD feature file and returns nil; it
// returns an error when a part cannot start or stops on its own. When ready is
// not nil it receives the HTTP listener's address once listening (tests use
// port 0).
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready chan<- string) error {
	allow, err := AllowList(cfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &daemon{cfg: cfg, log: log, resources: Resources(cfg), metrics: metrics.New(reg), cdiSpecs: map[string]string{},
		scanner:   discovery.Scanner{SysfsRoot: cfg.SysfsRoot, DevRoot: cfg.DevRoot, DeviceIDs: allow},
		inventory: &amdxdna.Inventory{SysfsRoot: cfg.SysfsRoot}}
	reg.MustRegister(newContextsCollector(d))
	for _, r := range d.resources {
		p, err := plugin.New(plugin.Options{
			ResourceName: r.Name, Family: r.Family, PluginDir: cfg.PluginDir,
			ContextsPerNPU: cfg.ContextsPerNPU, Policy: plugin.Policy(cfg.AllocationPolicy),
			CDI: cfg.CDI.Enabled, HostDevRoot: cfg.HostDevRoot, Metrics: d.metrics, Log: log,
		})
		if err != nil {
			return err
		}
		d.plugins = append(d.plugins, p)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	if cfg.MetricsAddress != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddress)
		if err != nil {
			return fmt.Errorf("metrics address: %w", err)
		}
		if ready != nil {
			ready <- ln.Addr().String()
		}
		goRun("http", func(ctx context.Context) error { return d.serveHTTP(ctx, ln, reg) })
	}
	mon := &discovery.Monitor{
		Scanner:  d.scanner,
		Interval: cfg.HealthInterval.Duration,
		Log:      log,
	}
	goRun("discovery", func(ctx context.Context) error { return mon.Run(ctx, d.publish) })
	if cfg.CDI.Enabled {
		goRun("cdi", func(ctx context.Context) error { d.refreshCDI(ctx, cfg.HealthInterval.Duration); return nil })
	}
	for _, p := range d.plugins {
		goRun(p.ResourceName(), p.Run)
	}
	<-ctx.Done()
	cancel(nil)
	wg.Wait()
	d.cleanUp()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// AllowList maps the configured PCI device IDs to their families: deviceIDs to
// XDNA1 and, when XDNA2 is enabled, xdna2.deviceIDs to XDNA2.
func AllowList(cfg config.Config) (map[uint16]discovery.Family, error) {
	xdna1, xdna2, err := cfg.ParseDeviceIDs()
	if err != nil {
		return nil, err
	}
	out := map[uint16]discovery.Family{}
	for _, id := range xdna1 {
		out[id] = discovery.XDNA1
	}
	for _, id := range xdna2 {
		out[id] = discovery.XDNA2
	}
	return out, nil
}

// Resources lists the advertised resources with their families: the XDNA1
// resource, and the XDNA2 one when enabled.
func Resources(cfg config.Config) []nfd.Resource {
	rs := []nfd.Resource{{Name: cfg.ResourceName, Family: discovery.XDNA1, ContextsPerNPU: cfg.ContextsPerNPU}}
	if cfg.XDNA2.Enabled {
		rs = append(rs, nfd.Resource{Name: cfg.XDNA2.ResourceName, Family: discovery.XDNA2, ContextsPerNPU: cfg.ContextsPerNPU})
	}
	return rs
}

// publish hands a new NPU list to the plugins, the metrics, the CDI spec and
// the NFD feature file (files are rewritten only when their content changes).
func (d *daemon) publish(npus []discovery.NPU) {
	for _, p := range d.plugins {
		p.Update(npus)
	}
	families := make([]discovery.Family, len(d.resources))
	for i, r := range d.resources {
		families[i] = r.Family
	}
	d.metrics.SetDevices(families, npus)
	var details map[string]nfd.Details
	if d.cfg.NFD.Enabled {
		details = d.details(npus)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.scanned = true
	d.npus = npus
	if d.cfg.CDI.Enabled {
		for _, r := range d.resources {
			d.writeCDI(r, npus)
		}
	}
	if d.cfg.NFD.Enabled {
		d.writeNFD(npus, details)
	}
}

// refreshCDI rewrites the CDI specs every interval, until ctx is done, should
// a host node's mode, owner or group have changed (a chmod changes no NPU, so
// discovery publishes nothing): the spec mirrors the node as it is now.
func (d *daemon) refreshCDI(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		if d.scanned {
			for _, r := range d.resources {
				d.writeCDI(r, d.npus)
			}
		}
		d.mu.Unlock()
	}
}

// writeCDI writes resource r's CDI spec if it changed. Call with d.mu held.
func (d *daemon) writeCDI(r nfd.Resource, npus []discovery.NPU) {
	spec, err := cdi.Build(r.Name, d.cfg.DevRoot, d.cfg.HostDevRoot, discovery.OfFamily(npus, r.Family))
	if err != nil {
		d.log.Error("CDI spec not written: the previous one stays", "err", err)
		return
	}
	key := specKey(spec)
	if d.cdiSpecs[r.Name] == key {
		return
	}
	path, err := cdi.Write(d.cfg.CDI.Dir, spec)
	if err != nil {
		d.log.Error("CDI spec not written", "err", err)
		return
	}
	d.cdiSpecs[r.Name] = key
	d.log.Info("CDI spec written", "path", path, "devices", len(spec.Devices))
}

// specKey is the spec's content, to compare with the last one written (its
// nodes hold pointers: fmt would print their addresses).
func specKey(s cdi.Spec) string {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Sprintf("unencodable spec: %v", err)
	}
	return string(b)
}

// writeNFD writes the NFD feature file if its labels changed. Call with d.mu held.
func (d *daemon) writeNFD(npus []discovery.NPU, details map[string]nfd.Details) {
	text := nfd.LabelsWith(d.resources, npus, details)
	if text == d.nfdText {
		return
	}
	if err := nfd.Write(d.cfg.NFD.Dir, text); err != nil {
		d.log.Error("NFD feature file not written", "err", err)
		return
	}
	d.nfdText = text
}

// cleanUp removes the NFD feature file. The CDI spec stays: it describes the
// hardware, and containers that restart while the plugin is down still need it.
func (d *daemon) cleanUp() {
	if d.cfg.NFD.Enabled {
		if err := nfd.Remove(d.cfg.NFD.Dir); err != nil {
			d.log.Error("NFD feature file left behind", "err", err)
		}
	}
}

// serveHTTP serves /metrics, /healthz (the process is up and has scanned; it
// stays ok while the kubelet is away, so a liveness probe never turns a kubelet
// restart into a crash loop) and /readyz (every resource is registered).
func (d *daemon) serveHTTP(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", d.healthz)
	mux.HandleFunc("/readyz", d.readyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// healthz is ok once the first device scan has completed.
func (d *daemon) healthz(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	scanned := d.scanned
	d.mu.Unlock()
	if !scanned {
		http.Error(w, "no device scan has completed yet", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// readyz is ok while every resource is registered with the kubelet.
func (d *daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	for _, p := range d.plugins {
		if !p.Registered() {
			http.Error(w, p.ResourceName()+": not registered with the kubelet", http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}
