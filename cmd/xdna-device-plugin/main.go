// Command xdna-device-plugin advertises AMD XDNA NPUs (/dev/accel/accelN, driver
// amdxdna) to the kubelet as the extended resource amd.com/npu, keeps the
// advertisement healthy across kubelet restarts and device hot-plug, labels the
// node through an NFD feature file, optionally writes a CDI spec, and serves
// /metrics, /healthz and /readyz.
//
// Usage:
//
//	xdna-device-plugin [--config file.yaml] [flags]
//
// SIGTERM or SIGINT stops serving, removes the plugin's socket and the NFD
// feature file, and exits 0. Bad flags or configuration exit 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/cdi"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/metrics"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/nfd"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/plugin"
	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

const program = "xdna-device-plugin"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWithReady(ctx, args, stdout, stderr, nil)
}

// runWithReady is run that reports the HTTP address on ready once listening.
func runWithReady(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) int {
	cfg, showVersion, err := config.Parse(program, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 2
	case showVersion:
		fmt.Fprintln(stdout, version.String(program))
		return 0
	}
	log := cfg.Logger(stderr)
	log.Info("starting", "version", version.String(program), "resource", cfg.ResourceName,
		"contextsPerNPU", cfg.ContextsPerNPU, "xdna2", cfg.XDNA2.Enabled, "pluginDir", cfg.PluginDir)
	if err := serve(ctx, cfg, log, ready); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped cleanly")
	return 0
}

// daemon holds the running parts.
type daemon struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *metrics.Metrics
	plugins []*plugin.Plugin

	mu       sync.Mutex
	scanned  bool
	nfdText  string
	cdiSpecs map[string]string // resource → last spec written
}

// serve runs until ctx is done. When ready is not nil it receives the HTTP
// listener's address once serving (tests use port 0).
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, ready chan<- string) error {
	allow, err := cfg.AllowList()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &daemon{cfg: cfg, log: log, metrics: metrics.New(reg), cdiSpecs: map[string]string{}}
	for _, r := range cfg.Resources() {
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
		Scanner:  discovery.Scanner{SysfsRoot: cfg.SysfsRoot, DevRoot: cfg.DevRoot, DeviceIDs: allow},
		Interval: cfg.HealthInterval.Duration,
		Log:      log,
	}
	goRun("discovery", func(ctx context.Context) error { return mon.Run(ctx, d.publish) })
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

// publish hands a new NPU list to the plugins, the metrics, the CDI spec and
// the NFD feature file (files are rewritten only when their content changes).
func (d *daemon) publish(npus []discovery.NPU) {
	for _, p := range d.plugins {
		p.Update(npus)
	}
	resources := d.cfg.Resources()
	families := make([]discovery.Family, len(resources))
	for i, r := range resources {
		families[i] = r.Family
	}
	d.metrics.SetDevices(families, npus)

	d.mu.Lock()
	defer d.mu.Unlock()
	d.scanned = true
	if d.cfg.CDI.Enabled {
		for _, r := range resources {
			spec := cdi.Build(r.Name, d.cfg.HostDevRoot, ofFamily(npus, r.Family))
			key := fmt.Sprint(spec)
			if d.cdiSpecs[r.Name] == key {
				continue
			}
			if path, err := cdi.Write(d.cfg.CDI.Dir, spec); err != nil {
				d.log.Error("CDI spec not written", "err", err)
			} else {
				d.cdiSpecs[r.Name] = key
				d.log.Info("CDI spec written", "path", path, "devices", len(spec.Devices))
			}
		}
	}
	if d.cfg.NFD.Enabled {
		if text := nfd.Labels(resources, npus); text != d.nfdText {
			if err := nfd.Write(d.cfg.NFD.Dir, text); err != nil {
				d.log.Error("NFD feature file not written", "err", err)
			} else {
				d.nfdText = text
			}
		}
	}
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

// ofFamily filters npus by family.
func ofFamily(npus []discovery.NPU, f discovery.Family) []discovery.NPU {
	var out []discovery.NPU
	for _, n := range npus {
		if n.Family == f {
			out = append(out, n)
		}
	}
	return out
}

// serveHTTP serves /metrics, /healthz (the process is up and has scanned; it
// stays ok while the kubelet is away, so a liveness probe never turns a kubelet
// restart into a crash loop) and /readyz (every resource is registered).
func (d *daemon) serveHTTP(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		d.mu.Lock()
		scanned := d.scanned
		d.mu.Unlock()
		if !scanned {
			http.Error(w, "no device scan has completed yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, p := range d.plugins {
			if !p.Registered() {
				http.Error(w, p.ResourceName()+": not registered with the kubelet", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
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
