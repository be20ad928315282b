// Command xdna-dra-driver is the Dynamic Resource Allocation driver for AMD
// XDNA NPUs: a kubelet plugin that publishes each NPU of its node as a device
// of driver npu.amd.com in a ResourceSlice (hardware contexts as consumable
// capacity, so claims share an NPU), prepares claims by CDI, checkpoints them
// in its plugin directory, reports device health to the kubelet, and
// republishes when NPUs come, go or turn unhealthy.
//
// Usage:
//
//	xdna-dra-driver --node-name=$(NODE_NAME) [flags]
//
// SIGTERM or SIGINT stops the plugin (the kubelet unregisters it) and exits 0.
// Bad flags exit 2; a failure to start exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/amdxdna"
	dpconfig "github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/dra"
	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

const program = "xdna-dra-driver"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	driverName, nodeName, podUID    string
	sysfsRoot, devRoot, hostDevRoot string
	cdiDir, pluginDir, registrarDir string
	kubeconfig                      string
	xdna2                           bool
	fallbackContexts                int
	unhealthy                       string
	rescan, inventoryMaxAge         time.Duration
	logLevel                        string
	showVersion                     bool
}

// parse reads the flags; NODE_NAME and POD_UID (the downward API) are the
// defaults of --node-name and --pod-uid.
func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.driverName, "driver-name", dra.DefaultDriverName, "DRA driver name (also the DeviceClass name and the attributes' domain)")
	fs.StringVar(&c.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME); names the ResourceSlice pool")
	fs.StringVar(&c.podUID, "pod-uid", os.Getenv("POD_UID"), "this pod's UID (default $POD_UID); when set, two driver pods may overlap during a rolling update (kubelet >= 1.33)")
	fs.StringVar(&c.sysfsRoot, "sysfs-root", "/sys", "where the host's sysfs is mounted")
	fs.StringVar(&c.devRoot, "dev-root", "/dev", "where the host's /dev is mounted")
	fs.StringVar(&c.hostDevRoot, "host-dev-root", "", "the node's /dev as the container runtime sees it (default /dev)")
	fs.StringVar(&c.cdiDir, "cdi-dir", dpconfig.DefaultCDIDir, "directory for per-claim CDI specs (the runtime's CDI spec directory)")
	fs.StringVar(&c.pluginDir, "plugin-dir", "", "the plugin's data directory: DRA socket, lock and checkpoint (default "+kubeletplugin.KubeletPluginsDir+"/<driver-name>)")
	fs.StringVar(&c.registrarDir, "registrar-dir", kubeletplugin.KubeletRegistryDir, "the kubelet's plugin registration directory")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration)")
	fs.BoolVar(&c.xdna2, "enable-xdna2", false, "also publish XDNA2 (Strix/Krackan, PCI 0x17f0) NPUs; the encoder has no XDNA2 kernels")
	fs.IntVar(&c.fallbackContexts, "fallback-contexts", dra.DefaultContexts, "context capacity of an NPU whose driver does not report its limit (kernels before QUERY_RESOURCE_INFO)")
	fs.StringVar(&c.unhealthy, "unhealthy", string(dra.UnhealthyTaint), "unhealthy NPUs: taint (kept with a NoSchedule taint; device taints are on by default since Kubernetes 1.36) or remove (left out of the slice; for older clusters)")
	fs.DurationVar(&c.rescan, "rescan-interval", dpconfig.DefaultHealthInterval, "periodic rescan of sysfs (driver unbinds send no inotify event) and republish of the slice (a starting kubelet deletes it)")
	fs.DurationVar(&c.inventoryMaxAge, "inventory-max-age", amdxdna.DefaultMaxAge, "how long amdxdna query answers are reused; every query wakes the NPU")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.showVersion {
		return c, nil
	}
	switch {
	case c.nodeName == "":
		return c, errors.New("--node-name (or $NODE_NAME) is required")
	case c.fallbackContexts < 1:
		return c, fmt.Errorf("--fallback-contexts %d: want at least 1", c.fallbackContexts)
	case c.unhealthy != string(dra.UnhealthyRemove) && c.unhealthy != string(dra.UnhealthyTaint):
		return c, fmt.Errorf("--unhealthy %q: want remove or taint", c.unhealthy)
	case c.rescan <= 0 || c.inventoryMaxAge <= 0:
		return c, errors.New("--rescan-interval and --inventory-max-age must be positive")
	}
	if c.pluginDir == "" {
		c.pluginDir = filepath.Join(kubeletplugin.KubeletPluginsDir, c.driverName)
	}
	return c, nil
}

// logger builds the slog logger at the configured level.
func (c config) logger(w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(c.logLevel))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 2
	case c.showVersion:
		fmt.Fprintln(stdout, version.String(program))
		return 0
	}
	log, err := c.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 2
	}
	client, err := kubeClient(c.kubeconfig)
	if err != nil {
		log.Error("no Kubernetes client", "err", err)
		return 1
	}
	log.Info("starting", "version", version.String(program), "driver", c.driverName, "node", c.nodeName,
		"pluginDir", c.pluginDir, "registrarDir", c.registrarDir, "cdiDir", c.cdiDir)
	if err := serve(ctx, c, client, log); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped cleanly")
	return 0
}

// kubeClient uses the kubeconfig file when given, the in-cluster
// configuration otherwise.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// serve runs the driver until ctx is done.
func serve(ctx context.Context, c config, client kubernetes.Interface, log *slog.Logger) error {
	ids := map[uint16]discovery.Family{}
	for id, f := range discovery.DefaultDeviceIDs {
		ids[id] = f
	}
	if c.xdna2 {
		for id, f := range discovery.XDNA2DeviceIDs {
			ids[id] = f
		}
	}
	scanner := discovery.Scanner{SysfsRoot: c.sysfsRoot, DevRoot: c.devRoot, DeviceIDs: ids}
	if err := os.MkdirAll(c.pluginDir, 0o750); err != nil {
		return fmt.Errorf("plugin directory: %w", err)
	}
	d, err := dra.New(dra.Options{
		DriverName: c.driverName, NodeName: c.nodeName, Scanner: scanner, HostDevRoot: c.hostDevRoot,
		CDIDir: c.cdiDir, StateDir: c.pluginDir, FallbackContexts: c.fallbackContexts,
		Unhealthy: dra.UnhealthyPolicy(c.unhealthy), Log: log,
		Inventory: &amdxdna.Inventory{SysfsRoot: c.sysfsRoot, MaxAge: c.inventoryMaxAge},
	})
	if err != nil {
		return err
	}
	// Know the NPUs before the kubelet can ask to prepare a claim.
	obs, err := scanner.Scan()
	if err != nil {
		return err
	}
	d.Observe(discovery.NewTracker().Update(obs))

	opts := []kubeletplugin.Option{
		kubeletplugin.DriverName(c.driverName), kubeletplugin.NodeName(c.nodeName),
		kubeletplugin.KubeClient(client), kubeletplugin.PluginDataDirectoryPath(c.pluginDir),
		kubeletplugin.RegistrarDirectoryPath(c.registrarDir),
	}
	if c.podUID != "" {
		opts = append(opts, kubeletplugin.RollingUpdate(types.UID(c.podUID)))
	}
	helper, err := kubeletplugin.Start(ctx, d, opts...)
	if err != nil {
		return fmt.Errorf("start kubelet plugin: %w", err)
	}
	defer helper.Stop()
	return d.Run(ctx, helper, c.rescan)
}
