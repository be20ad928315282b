package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	xdna1, xdna2, err := Defaults().ParseDeviceIDs()
	if err != nil || len(xdna1) != 1 || xdna1[0] != 0x1502 || xdna2 != nil {
		t.Fatalf("default allow-lists %#x and %#x (%v), want only 0x1502 as xdna1", xdna1, xdna2, err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{"six contexts", func(c *Config) { c.ContextsPerNPU = 6 }, ""},
		{"seven contexts refused with the reason", func(c *Config) { c.ContextsPerNPU = 7 },
			"contextsPerNPU 7: an XDNA1 NPU has 6 hardware contexts, shared by every process on the machine"},
		{"zero contexts", func(c *Config) { c.ContextsPerNPU = 0 }, "contextsPerNPU 0: want 1 (exclusive) up to 6"},
		{"unqualified resource", func(c *Config) { c.ResourceName = "npu" }, `resourceName "npu": want a vendor-qualified`},
		{"reserved domain", func(c *Config) { c.ResourceName = "kubernetes.io/npu" }, "reserved"},
		{"xdna2 same resource", func(c *Config) { c.XDNA2.Enabled = true; c.XDNA2.ResourceName = "amd.com/npu" }, "must differ"},
		{"xdna2 enabled", func(c *Config) { c.XDNA2.Enabled = true }, ""},
		{"bad device ID", func(c *Config) { c.DeviceIDs = []string{"0x1502", "phoenix"} }, `deviceIDs: "phoenix" is not a 16-bit hex PCI device ID`},
		{"empty allow-list", func(c *Config) { c.DeviceIDs = nil }, "deviceIDs: empty"},
		{"ID in both lists", func(c *Config) { c.XDNA2.Enabled = true; c.XDNA2.DeviceIDs = []string{"0x1502"} }, "xdna2.deviceIDs: 0x1502 is already listed for xdna1"},
		{"policy", func(c *Config) { c.AllocationPolicy = "random" }, `allocationPolicy "random": want "spread" or "pack"`},
		{"relative path", func(c *Config) { c.PluginDir = "device-plugins" }, `pluginDir "device-plugins": want an absolute path`},
		{"relative host dev root", func(c *Config) { c.HostDevRoot = "node/dev" }, `hostDevRoot "node/dev": want an absolute path`},
		{"host dev root elsewhere", func(c *Config) { c.HostDevRoot = "/var/lib/node/dev" }, ""},
		{"tiny interval", func(c *Config) { c.HealthInterval.Duration = time.Millisecond }, "healthInterval 1ms: want at least 100ms"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, `logFormat "xml"`},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, `logLevel "loud"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParsePrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	yaml := `
resourceName: example.com/npu
contextsPerNPU: 4
healthInterval: 2s
hostDevRoot: /var/lib/node/dev
cdi:
  enabled: true
xdna2:
  enabled: true
`
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, version, err := Parse("xdna-device-plugin", []string{"--config", file, "--contexts-per-npu=2", "--log-format=text"})
	if err != nil || version {
		t.Fatalf("Parse: %v (version %v)", err, version)
	}
	if c.ResourceName != "example.com/npu" || c.ContextsPerNPU != 2 || c.HealthInterval.Duration != 2*time.Second ||
		!c.CDI.Enabled || c.CDI.Dir != "/var/run/cdi" || !c.XDNA2.Enabled || c.LogFormat != "text" || !c.NFD.Enabled ||
		c.HostDevRoot != "/var/lib/node/dev" || c.DevRoot != "/dev" {
		t.Errorf("got %+v: want the file's values, defaults where it is silent, and the flags over both", c)
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", write("a.yaml", "contextPerNPU: 2\n")}, `unknown field "contextPerNPU"`},
		{"bad duration", []string{"--config", write("b.yaml", "healthInterval: often\n")}, `duration "often"`},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, "no such file"},
		{"invalid flag value", []string{"--contexts-per-npu=9"}, "contextsPerNPU 9"},
		{"relative host dev root", []string{"--host-dev-root=dev"}, `hostDevRoot "dev": want an absolute path`},
		{"stray argument", []string{"serve"}, `unexpected arguments ["serve"]`},
		{"unknown flag", []string{"--gpus=1"}, "flag provided but not defined: -gpus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse("xdna-device-plugin", tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, version, err := Parse("xdna-device-plugin", []string{"--version"}); err != nil || !version {
		t.Errorf("--version: %v %v", version, err)
	}
}
