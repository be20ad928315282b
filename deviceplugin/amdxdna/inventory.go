package amdxdna

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultMaxAge is how long an Inventory answer is reused before the device is
// asked again. Every GET_INFO wakes the NPU from runtime suspend; the facts a
// scheduler needs (firmware, shape, context limit) change only with a driver
// reload, which removes and re-adds the device anyway.
const DefaultMaxAge = 10 * time.Minute

// Source says where a value came from.
type Source string

const (
	// FromDriver is an amdxdna ioctl's answer.
	FromDriver Source = "driver"
	// FromSysfs is a sysfs attribute's value.
	FromSysfs Source = "sysfs"
)

// Target names one NPU to the Inventory.
type Target struct {
	// PCIAddress is the cache key, e.g. "0000:c4:00.1".
	PCIAddress string
	// NodePath is the accel node to open, e.g. "/dev/accel/accel0".
	NodePath string
	// SysfsDir is the PCI device's sysfs directory (fw_version, vbnv,
	// device_type live there).
	SysfsDir string
}

// Info is what the Inventory knows about one NPU. Zero values mean unknown;
// Notes say why.
type Info struct {
	PCIAddress string
	// QueriedAt is when the device was last asked.
	QueriedAt time.Time
	// DriverName and DriverVersion come from DRM_IOCTL_VERSION (driver "amdxdna",
	// version "major.minor.patch"), or the module's sysfs version.
	DriverName, DriverVersion string
	DriverVersionSource       Source
	// Firmware is "major.minor.patch.build".
	Firmware       string
	FirmwareSource Source
	// AIEVersion is "major.minor"; Columns and Rows are the whole array's.
	AIEVersion    string
	Columns, Rows int
	// MaxContexts is the hardware-context limit and ContextsInUse the contexts
	// that exist now (all processes); -1 when unknown.
	MaxContexts, ContextsInUse int
	// PowerMode is the configured power mode's name.
	PowerMode string
	// VBNV and DeviceType are amdxdna's sysfs attributes.
	VBNV, DeviceType string
	// Notes explain every value that is missing or came from sysfs.
	Notes []string
}

// Inventory queries NPUs rarely and caches the answers. It is safe for
// concurrent use.
type Inventory struct {
	// Open opens a device for queries; amdxdna.Open (as a Querier) when nil.
	Open func(path string) (Querier, error)
	// SysfsRoot is where sysfs is mounted ("/sys" when empty), for the
	// module's version.
	SysfsRoot string
	// MaxAge bounds how old a cached answer may be; DefaultMaxAge when zero.
	MaxAge time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	target Target
	info   Info
}

// Get returns the cached Info of t, asking the device only when there is none,
// it is older than MaxAge, or t changed (another node path: the driver was
// reloaded).
func (inv *Inventory) Get(t Target) Info {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	c, ok := inv.cache[t.PCIAddress]
	if ok && c.target == t && inv.now().Sub(c.info.QueriedAt) < inv.maxAge() {
		return c.info
	}
	return inv.refreshLocked(t)
}

// Refresh asks the device now and caches the answer.
func (inv *Inventory) Refresh(t Target) Info {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.refreshLocked(t)
}

// Forget drops the cached Info of a PCI address (the device went away).
func (inv *Inventory) Forget(pciAddress string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	delete(inv.cache, pciAddress)
}

func (inv *Inventory) refreshLocked(t Target) Info {
	info := inv.query(t)
	if inv.cache == nil {
		inv.cache = map[string]cached{}
	}
	inv.cache[t.PCIAddress] = cached{target: t, info: info}
	return info
}

func (inv *Inventory) now() time.Time {
	if inv.Now != nil {
		return inv.Now()
	}
	return time.Now()
}

func (inv *Inventory) maxAge() time.Duration {
	if inv.MaxAge > 0 {
		return inv.MaxAge
	}
	return DefaultMaxAge
}

func (inv *Inventory) open(path string) (Querier, error) {
	if inv.Open != nil {
		return inv.Open(path)
	}
	d, err := Open(path)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// query asks the device everything once, filling what it refuses from sysfs.
func (inv *Inventory) query(t Target) Info {
	info := Info{PCIAddress: t.PCIAddress, QueriedAt: inv.now(), MaxContexts: -1, ContextsInUse: -1,
		VBNV: readAttr(t.SysfsDir, "vbnv"), DeviceType: readAttr(t.SysfsDir, "device_type")}
	q, err := inv.open(t.NodePath)
	if err != nil {
		info.note("cannot open %s (%s): every value from sysfs", t.NodePath, reason(err))
		inv.fillFromSysfs(&info, t)
		return info
	}
	defer q.Close()
	if v, err := q.Version(); err == nil {
		info.DriverName, info.DriverVersion, info.DriverVersionSource = v.Name, v.String(), FromDriver
	} else {
		info.note("DRM_IOCTL_VERSION: %s", reason(err))
	}
	if fw, err := QueryFirmwareVersion(q); err == nil {
		info.Firmware, info.FirmwareSource = fw.String(), FromDriver
	} else {
		info.note("%s: %s", ParamFirmwareVersion, reason(err))
	}
	if md, err := QueryAIEMetadata(q); err == nil {
		info.AIEVersion, info.Columns, info.Rows = md.Version.String(), int(md.Columns), int(md.Rows)
	} else {
		info.note("%s: %s", ParamAIEMetadata, reason(err))
	}
	inv.queryContexts(q, &info)
	if pm, err := QueryPowerMode(q); err == nil {
		info.PowerMode = pm.String()
	} else {
		info.note("%s: %s", ParamPowerMode, reason(err))
	}
	inv.fillFromSysfs(&info, t)
	return info
}

// queryContexts fills the context limit and use: QUERY_RESOURCE_INFO has both;
// without it (6.14) the limit stays unknown and the use is counted from
// GET_ARRAY or, failing that, QUERY_HW_CONTEXTS.
func (inv *Inventory) queryContexts(q Querier, info *Info) {
	ri, err := QueryResourceInfo(q)
	if err == nil {
		info.MaxContexts, info.ContextsInUse = int(ri.MaxContexts), int(ri.ContextsInUse)
		return
	}
	info.note("%s: %s", ParamResourceInfo, reason(err))
	if ctxs, err := QueryHWContextArray(q); err == nil {
		info.ContextsInUse = len(ctxs)
		return
	} else {
		info.note("GET_ARRAY HW_CONTEXT_ALL: %s", reason(err))
	}
	if ctxs, err := QueryHWContexts(q); err == nil {
		info.ContextsInUse = len(ctxs)
	} else {
		info.note("%s: %s", ParamHWContexts, reason(err))
	}
}

// fillFromSysfs fills the firmware and driver version from sysfs where the
// driver gave none.
func (inv *Inventory) fillFromSysfs(info *Info, t Target) {
	if info.Firmware == "" {
		if fw := readAttr(t.SysfsDir, "fw_version"); fw != "" {
			info.Firmware, info.FirmwareSource = fw, FromSysfs
			info.note("firmware version from sysfs fw_version")
		} else {
			info.note("no firmware version: the driver gave none and %s has no fw_version", t.SysfsDir)
		}
	}
	if info.DriverVersion == "" {
		root := inv.SysfsRoot
		if root == "" {
			root = "/sys"
		}
		if v := readAttr(filepath.Join(root, "module", "amdxdna"), "version"); v != "" {
			info.DriverName, info.DriverVersion, info.DriverVersionSource = "amdxdna", v, FromSysfs
			info.note("driver version from sysfs module/amdxdna/version")
		}
	}
}

func (i *Info) note(format string, args ...any) {
	i.Notes = append(i.Notes, fmt.Sprintf(format, args...))
}

// reason explains a query failure: the errno's meaning for refusals, the
// error itself otherwise.
func reason(err error) string {
	var q *QueryError
	if errors.As(err, &q) {
		if q.Refused() {
			return "refused, " + q.Reason()
		}
		return "failed, " + q.Reason()
	}
	return err.Error()
}

// readAttr reads a sysfs attribute, trimmed; "" when absent or unreadable.
func readAttr(dir, name string) string {
	if dir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
