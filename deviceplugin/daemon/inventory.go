package daemon

import (
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/amdxdna"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/nfd"
)

// What the amdxdna driver says about each NPU (deviceplugin/amdxdna): the firmware version
// and AIE columns for the NFD labels, the hardware contexts for /metrics. Every query wakes
// the NPU from runtime suspend, so answers are cached for amdxdna.DefaultMaxAge; a query the
// driver refuses (no permission to open the node, an older kernel) falls back to sysfs.

// target names NPU n to the inventory as this plugin sees the host.
func target(s discovery.Scanner, n discovery.NPU) amdxdna.Target {
	return amdxdna.Target{
		PCIAddress: n.PCIAddress,
		NodePath:   s.NodePath(n.AccelName),
		SysfsDir:   filepath.Join(s.ClassDir(), n.AccelName, "device"),
	}
}

// details asks the inventory about every healthy NPU (cached) and forgets the others, so
// that an NPU coming back (a driver reload may bring new firmware) is asked again.
func (d *daemon) details(npus []discovery.NPU) map[string]nfd.Details {
	out := map[string]nfd.Details{}
	for _, n := range npus {
		if !n.Healthy {
			d.inventory.Forget(n.PCIAddress)
			continue
		}
		info := d.inventory.Get(target(d.scanner, n))
		if info.FirmwareSource != amdxdna.FromDriver {
			info.Firmware = "" // sysfs: discovery has read it already
		}
		out[n.PCIAddress] = nfd.Details{Firmware: info.Firmware, Columns: info.Columns}
	}
	return out
}

// contextsCollector exports the hardware contexts the amdxdna driver reports for each healthy
// NPU: xdna_device_plugin_npu_hw_contexts{pci_address, state="max"|"in_use"}. The contexts are
// shared by every process on the node, the plugin's pods or not; values are as of the last
// query (at most amdxdna.DefaultMaxAge old) and absent when the driver cannot tell.
type contextsCollector struct {
	d    *daemon
	desc *prometheus.Desc
}

func newContextsCollector(d *daemon) *contextsCollector {
	return &contextsCollector{d: d, desc: prometheus.NewDesc("xdna_device_plugin_npu_hw_contexts",
		"Hardware contexts of each healthy NPU as the amdxdna driver reports them (all processes), by state: max or in_use; "+
			"as of the last query, at most 10 minutes old.",
		[]string{"pci_address", "state"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *contextsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *contextsCollector) Collect(ch chan<- prometheus.Metric) {
	c.d.mu.Lock()
	npus := c.d.npus
	c.d.mu.Unlock()
	for _, n := range npus {
		if !n.Healthy {
			continue
		}
		info := c.d.inventory.Get(target(c.d.scanner, n))
		if info.MaxContexts >= 0 {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(info.MaxContexts), n.PCIAddress, "max")
		}
		if info.ContextsInUse >= 0 {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(info.ContextsInUse), n.PCIAddress, "in_use")
		}
	}
}
