package discovery

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
)

// NPU is one NPU as advertised: identity, topology, attributes and health.
type NPU struct {
	// PCIAddress is the PCI bus address, e.g. "0000:c4:00.1"; the stable device ID.
	PCIAddress string
	// AccelName is the accel minor's name, e.g. "accel0" (the last one seen).
	AccelName string
	// DevicePath is the node's path on the host and in containers, "/dev/accel/accelN".
	DevicePath string
	// DeviceID is the PCI device ID.
	DeviceID uint16
	// Family is the NPU generation.
	Family Family
	// NUMANode is the NUMA node, -1 when unknown.
	NUMANode int
	// Firmware, VBNV and DeviceType are amdxdna's sysfs attributes ("" when absent).
	Firmware, VBNV, DeviceType string
	// Healthy is true when the node is a character device, amdxdna is bound and the
	// PCI device is present.
	Healthy bool
	// Problem says why the NPU is unhealthy; "" when it is healthy.
	Problem string
}

// OfFamily returns the NPUs of family f in npus, in their order.
func OfFamily(npus []NPU, f Family) []NPU {
	var out []NPU
	for _, n := range npus {
		if n.Family == f {
			out = append(out, n)
		}
	}
	return out
}

// HostPath is the node's path of the NPU's device node on a node whose /dev is at
// hostDevRoot, as the container runtime sees it: DevicePath itself when
// hostDevRoot is "/dev" or "".
func (n NPU) HostPath(hostDevRoot string) string {
	if hostDevRoot == "" {
		return n.DevicePath
	}
	return path.Join(hostDevRoot, strings.TrimPrefix(n.DevicePath, "/dev/"))
}

// Tracker turns successive scans into the advertised NPU list. An NPU is
// discovered when it is seen with the amdxdna driver bound; from then on it stays
// in the list for the life of the process, unhealthy while its node, driver or PCI
// device is missing and healthy again when they come back, so the kubelet sees a
// device that disappears as unhealthy (not as shrunken capacity) and recovers it.
// A Tracker is not safe for concurrent use.
type Tracker struct {
	known map[string]NPU
	dirs  map[string]string // PCI address → sysfs PCI directory
}

// NewTracker returns a Tracker that knows no NPU yet.
func NewTracker() *Tracker {
	return &Tracker{known: map[string]NPU{}, dirs: map[string]string{}}
}

// Update folds one scan into the tracked state and returns every known NPU,
// sorted by PCI address.
func (t *Tracker) Update(obs []Observation) []NPU {
	seen := map[string]bool{}
	for _, o := range obs {
		old, known := t.known[o.PCIAddress]
		if !known && o.Driver != DriverName {
			continue // never discovered: another driver owns it
		}
		seen[o.PCIAddress] = true
		t.dirs[o.PCIAddress] = o.PCIDir
		n := fromObservation(o)
		if o.Driver != DriverName {
			n = old
			n.Healthy, n.Problem = false, driverProblem(o.PCIAddress, o.Driver)
		}
		t.known[o.PCIAddress] = n
	}
	for addr, n := range t.known {
		if !seen[addr] {
			n.Healthy, n.Problem = false, t.missingProblem(addr, n.AccelName)
			t.known[addr] = n
		}
	}
	return t.list()
}

// fromObservation is the NPU an amdxdna-bound observation describes.
func fromObservation(o Observation) NPU {
	n := NPU{
		PCIAddress: o.PCIAddress,
		AccelName:  o.AccelName,
		DevicePath: path.Join("/dev/accel", o.AccelName),
		DeviceID:   o.DeviceID,
		Family:     o.Family,
		NUMANode:   o.NUMANode,
		Firmware:   o.Firmware,
		VBNV:       o.VBNV,
		DeviceType: o.DeviceType,
		Healthy:    o.NodeErr == nil,
	}
	if o.NodeErr != nil {
		n.Problem = o.NodeErr.Error()
	}
	return n
}

// missingProblem explains why a known NPU has no allow-listed class/accel entry.
func (t *Tracker) missingProblem(addr, accelName string) string {
	dir := t.dirs[addr]
	if _, err := os.Stat(dir); err != nil {
		return fmt.Sprintf("PCI device %s is gone from sysfs (%s)", addr, dir)
	}
	if d := DriverOf(dir); d != DriverName {
		return driverProblem(addr, d)
	}
	return fmt.Sprintf("PCI device %s has no accel entry (%s was last seen) in sysfs class/accel", addr, accelName)
}

// driverProblem describes a PCI device whose driver is not amdxdna.
func driverProblem(addr, driver string) string {
	if driver == "" {
		return fmt.Sprintf("PCI device %s: no driver bound, want %s", addr, DriverName)
	}
	return fmt.Sprintf("PCI device %s: driver %s bound, want %s", addr, driver, DriverName)
}

// list returns the known NPUs sorted by PCI address.
func (t *Tracker) list() []NPU {
	out := make([]NPU, 0, len(t.known))
	for _, n := range t.known {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PCIAddress < out[j].PCIAddress })
	return out
}

// PCIDirs lists the sysfs PCI directories of the known NPUs (to watch them).
func (t *Tracker) PCIDirs() []string {
	out := make([]string, 0, len(t.dirs))
	for _, d := range t.dirs {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
