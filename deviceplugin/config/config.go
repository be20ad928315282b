// Package config is the xdna-device-plugin configuration: defaults, an optional
// YAML file, command-line flags (which win over the file) and validation with
// errors that say what is wrong and what is accepted. It is a leaf: it holds
// plain values and imports nothing else of this repository; the daemon package
// turns them into the other packages' types.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// XDNA1Contexts is the number of hardware contexts of an XDNA1 NPU, shared by
// every process on the machine; more slots than this cannot all run at once.
const XDNA1Contexts = 6

// The allocation policies (plugin.Spread and plugin.Pack take these values).
const (
	// PolicySpread prefers shared slots on the least-loaded NPU.
	PolicySpread = "spread"
	// PolicyPack fills NPUs one by one.
	PolicyPack = "pack"
)

// Defaults of the settings that name a place or a period.
const (
	// DefaultHealthInterval is the periodic rescan interval.
	DefaultHealthInterval = 5 * time.Second
	// DefaultCDIDir is the CDI spec directory for dynamically generated specs.
	DefaultCDIDir = "/var/run/cdi"
	// DefaultNFDDir is NFD's default features.d directory on the host.
	DefaultNFDDir = "/etc/kubernetes/node-feature-discovery/features.d"
)

// Config is the whole configuration. The YAML file uses the JSON names.
type Config struct {
	// ResourceName is the XDNA1 resource ("amd.com/npu").
	ResourceName string `json:"resourceName"`
	// DeviceIDs is the XDNA1 allow-list of AMD PCI device IDs ("0x1502").
	DeviceIDs []string `json:"deviceIDs"`
	// XDNA2 configures the separate XDNA2 resource (off by default).
	XDNA2 XDNA2 `json:"xdna2"`
	// ContextsPerNPU is the number of slots advertised per NPU (1 = exclusive).
	ContextsPerNPU int `json:"contextsPerNPU"`
	// AllocationPolicy is "spread" or "pack" (how shared slots are preferred).
	AllocationPolicy string `json:"allocationPolicy"`
	// SysfsRoot and DevRoot are where the host's /sys and /dev are visible.
	SysfsRoot string `json:"sysfsRoot"`
	DevRoot   string `json:"devRoot"`
	// HostDevRoot is DevRoot's path on the node, as the container runtime sees it:
	// allocations hand the runtime <HostDevRoot>/accel/accelN, which containers
	// see as /dev/accel/accelN ("/dev" on a real node).
	HostDevRoot string `json:"hostDevRoot"`
	// PluginDir is the kubelet's device-plugin directory.
	PluginDir string `json:"pluginDir"`
	// HealthInterval is the periodic rescan interval.
	HealthInterval Duration `json:"healthInterval"`
	// CDI configures the CDI spec file and CDI names in allocations.
	CDI Output `json:"cdi"`
	// NFD configures the Node Feature Discovery feature file.
	NFD Output `json:"nfd"`
	// MetricsAddress is the listen address of /metrics, /healthz and /readyz
	// ("" disables the HTTP server).
	MetricsAddress string `json:"metricsAddress"`
	// LogFormat is "json" or "text"; LogLevel is "debug", "info", "warn" or "error".
	LogFormat string `json:"logFormat"`
	LogLevel  string `json:"logLevel"`
}

// XDNA2 configures the XDNA2 (Strix/Krackan) resource.
type XDNA2 struct {
	// Enabled advertises XDNA2 NPUs.
	Enabled bool `json:"enabled"`
	// ResourceName is the XDNA2 resource ("amd.com/npu-xdna2").
	ResourceName string `json:"resourceName"`
	// DeviceIDs is the XDNA2 allow-list ("0x17f0").
	DeviceIDs []string `json:"deviceIDs"`
}

// Output is an optional file the plugin maintains.
type Output struct {
	// Enabled turns the output on.
	Enabled bool `json:"enabled"`
	// Dir is the directory the file goes in.
	Dir string `json:"dir"`
}

// Duration is a time.Duration written as "5s" in YAML.
type Duration struct{ time.Duration }

// UnmarshalJSON parses "5s", "500ms", ….
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"5s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a Go duration such as \"5s\"", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Defaults is the configuration when neither file nor flags say otherwise.
func Defaults() Config {
	return Config{
		ResourceName:     "amd.com/npu",
		DeviceIDs:        []string{"0x1502"},
		XDNA2:            XDNA2{ResourceName: "amd.com/npu-xdna2", DeviceIDs: []string{"0x17f0"}},
		ContextsPerNPU:   1,
		AllocationPolicy: PolicySpread,
		SysfsRoot:        "/sys",
		DevRoot:          "/dev",
		HostDevRoot:      "/dev",
		PluginDir:        "/var/lib/kubelet/device-plugins",
		HealthInterval:   Duration{DefaultHealthInterval},
		CDI:              Output{Dir: DefaultCDIDir},
		NFD:              Output{Enabled: true, Dir: DefaultNFDDir},
		MetricsAddress:   ":8080",
		LogFormat:        "json",
		LogLevel:         "info",
	}
}

// Load reads a YAML file over the defaults; unknown keys are errors.
func Load(path string) (Config, error) {
	c := Defaults()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// Parse builds the configuration from command-line arguments: defaults, then
// the file named by --config, then every flag given explicitly. The bool result
// is true when --version was asked for.
func Parse(name string, args []string) (Config, bool, error) {
	c := Defaults()
	fs, version, file := newFlagSet(name, &c)
	if err := fs.Parse(args); err != nil {
		return c, false, err
	}
	if fs.NArg() > 0 {
		return c, false, fmt.Errorf("unexpected arguments %q: every setting is a flag", fs.Args())
	}
	if *version {
		return c, true, nil
	}
	if *file != "" {
		fc, err := Load(*file)
		if err != nil {
			return c, false, err
		}
		ffs, _, _ := newFlagSet(name, &fc)
		var err2 error
		fs.Visit(func(f *flag.Flag) {
			if err := ffs.Set(f.Name, f.Value.String()); err != nil && err2 == nil {
				err2 = fmt.Errorf("flag --%s: %w", f.Name, err)
			}
		})
		if err2 != nil {
			return c, false, err2
		}
		c = fc
	}
	return c, false, c.Validate()
}

// newFlagSet binds every flag to a field of c.
func newFlagSet(name string, c *Config) (fs *flag.FlagSet, version *bool, file *string) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	version = fs.Bool("version", false, "print the version and exit")
	file = fs.String("config", "", "YAML configuration file (flags given explicitly win over it)")
	fs.StringVar(&c.ResourceName, "resource-name", c.ResourceName, "extended resource advertised for XDNA1 NPUs")
	fs.Var((*listFlag)(&c.DeviceIDs), "device-ids", "comma-separated AMD PCI device IDs advertised as XDNA1")
	fs.BoolVar(&c.XDNA2.Enabled, "enable-xdna2", c.XDNA2.Enabled, "also advertise XDNA2 (Strix/Krackan) NPUs, as their own resource")
	fs.StringVar(&c.XDNA2.ResourceName, "xdna2-resource-name", c.XDNA2.ResourceName, "extended resource advertised for XDNA2 NPUs")
	fs.Var((*listFlag)(&c.XDNA2.DeviceIDs), "xdna2-device-ids", "comma-separated AMD PCI device IDs advertised as XDNA2")
	fs.IntVar(&c.ContextsPerNPU, "contexts-per-npu", c.ContextsPerNPU, fmt.Sprintf("slots advertised per NPU, 1..%d (NPU sharing)", XDNA1Contexts))
	fs.StringVar(&c.AllocationPolicy, "allocation-policy", c.AllocationPolicy, "with sharing, prefer slots on the least-loaded NPU (spread) or fill NPUs one by one (pack)")
	fs.StringVar(&c.SysfsRoot, "sysfs-root", c.SysfsRoot, "where the host's /sys is mounted")
	fs.StringVar(&c.DevRoot, "dev-root", c.DevRoot, "where the host's /dev is mounted (nodes are handed to containers as /dev/accel/...)")
	fs.StringVar(&c.HostDevRoot, "host-dev-root", c.HostDevRoot, "the node's path of --dev-root as the container runtime sees it (allocations name <host-dev-root>/accel/accelN)")
	fs.StringVar(&c.PluginDir, "plugin-dir", c.PluginDir, "the kubelet's device-plugin directory (holds kubelet.sock)")
	fs.DurationVar(&c.HealthInterval.Duration, "health-interval", c.HealthInterval.Duration, "periodic rescan interval (changes under /dev are also seen at once)")
	fs.BoolVar(&c.CDI.Enabled, "cdi", c.CDI.Enabled, "write a CDI spec and add CDI device names to allocations")
	fs.StringVar(&c.CDI.Dir, "cdi-dir", c.CDI.Dir, "directory of the CDI spec file")
	fs.BoolVar(&c.NFD.Enabled, "nfd", c.NFD.Enabled, "write the Node Feature Discovery feature file")
	fs.StringVar(&c.NFD.Dir, "nfd-features-dir", c.NFD.Dir, "NFD features.d directory")
	fs.StringVar(&c.MetricsAddress, "metrics-address", c.MetricsAddress, `listen address of /metrics, /healthz and /readyz ("" disables)`)
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	return fs, version, file
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// resourceName is a vendor-qualified extended resource name.
var resourceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	checkResource := func(field, name string) {
		if !resourceName.MatchString(name) || len(name) > 253 {
			bad("%s %q: want a vendor-qualified extended resource name such as amd.com/npu", field, name)
		} else if strings.HasSuffix(strings.SplitN(name, "/", 2)[0], "kubernetes.io") {
			bad("%s %q: the kubernetes.io domains are reserved", field, name)
		}
	}
	checkResource("resourceName", c.ResourceName)
	if c.XDNA2.Enabled {
		checkResource("xdna2.resourceName", c.XDNA2.ResourceName)
		if c.XDNA2.ResourceName == c.ResourceName {
			bad("xdna2.resourceName %q: must differ from resourceName, XDNA2 runs different kernels", c.XDNA2.ResourceName)
		}
	}
	if _, _, err := c.ParseDeviceIDs(); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.ContextsPerNPU < 1:
		bad("contextsPerNPU %d: want 1 (exclusive) up to %d", c.ContextsPerNPU, XDNA1Contexts)
	case c.ContextsPerNPU > XDNA1Contexts:
		bad("contextsPerNPU %d: an XDNA1 NPU has %d hardware contexts, shared by every process on the machine, "+
			"so at most %d containers can hold one at a time; advertising more would admit pods that fail to "+
			"create a context; want 1..%d", c.ContextsPerNPU, XDNA1Contexts, XDNA1Contexts, XDNA1Contexts)
	}
	if p := c.AllocationPolicy; p != PolicySpread && p != PolicyPack {
		bad("allocationPolicy %q: want %q or %q", c.AllocationPolicy, PolicySpread, PolicyPack)
	}
	for _, d := range []struct{ field, path string }{
		{"sysfsRoot", c.SysfsRoot}, {"devRoot", c.DevRoot}, {"hostDevRoot", c.HostDevRoot}, {"pluginDir", c.PluginDir},
		{"cdi.dir", c.CDI.Dir}, {"nfd.dir", c.NFD.Dir},
	} {
		if !filepath.IsAbs(d.path) {
			bad("%s %q: want an absolute path", d.field, d.path)
		}
	}
	if c.HealthInterval.Duration < 100*time.Millisecond {
		bad("healthInterval %v: want at least 100ms", c.HealthInterval.Duration)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("logFormat %q: want json or text", c.LogFormat)
	}
	if _, ok := levels[c.LogLevel]; !ok {
		bad("logLevel %q: want debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// ParseDeviceIDs parses the allow-lists: the XDNA1 IDs (deviceIDs) and, when
// XDNA2 is enabled, the XDNA2 IDs (xdna2.deviceIDs). An ID may be in one list
// only.
func (c Config) ParseDeviceIDs() (xdna1, xdna2 []uint16, err error) {
	listed := map[uint16]string{} // ID → family of the list that has it
	parse := func(field, family string, ids []string) ([]uint16, error) {
		if len(ids) == 0 {
			return nil, fmt.Errorf("%s: empty, want at least one PCI device ID such as 0x1502", field)
		}
		var out []uint16
		for _, s := range ids {
			v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 16)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a 16-bit hex PCI device ID such as 0x1502", field, s)
			}
			if f, dup := listed[uint16(v)]; dup {
				return nil, fmt.Errorf("%s: %s is already listed for %s", field, s, f)
			}
			listed[uint16(v)] = family
			out = append(out, uint16(v))
		}
		return out, nil
	}
	if xdna1, err = parse("deviceIDs", "xdna1", c.DeviceIDs); err != nil {
		return nil, nil, err
	}
	if c.XDNA2.Enabled {
		if xdna2, err = parse("xdna2.deviceIDs", "xdna2", c.XDNA2.DeviceIDs); err != nil {
			return nil, nil, err
		}
	}
	return xdna1, xdna2, nil
}

// levels are the accepted log levels.
var levels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// Logger returns the structured logger the configuration asks for, writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: levels[c.LogLevel]}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
