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
// feature file, and exits 0. Bad flags or configuration exit 2. This file only
// parses the flags and starts the daemon (package deviceplugin/daemon).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/daemon"
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
	if err := daemon.Run(ctx, cfg, log, nil); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped cleanly")
	return 0
}
