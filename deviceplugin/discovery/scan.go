// Package discovery finds AMD XDNA NPUs in sysfs and devfs and tracks their health.
//
// An NPU is an entry <sysfs>/class/accel/accelN whose `device` link leads to a PCI
// device with vendor 0x1022 and a device ID from an allow-list, whose `driver` link
// names amdxdna, and whose node <dev>/accel/accelN is a character device. Both roots
// are configurable so the plugin can run in a container with host paths mounted
// elsewhere and so tests can build fake trees.
package discovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// VendorAMD is the PCI vendor ID of AMD.
const VendorAMD = 0x1022

// DriverName is the kernel driver that must be bound to an NPU.
const DriverName = "amdxdna"

// Family names a generation of XDNA NPU; each family is advertised as its own
// resource because its kernels differ.
type Family string

const (
	// XDNA1 is Phoenix/Hawk Point (PCI device 0x1502).
	XDNA1 Family = "xdna1"
	// XDNA2 is Strix/Krackan (PCI device 0x17f0).
	XDNA2 Family = "xdna2"
)

// DefaultDeviceIDs is the default allow-list: XDNA1 only.
var DefaultDeviceIDs = map[uint16]Family{0x1502: XDNA1}

// XDNA2DeviceIDs is the allow-list entry added when XDNA2 is enabled.
var XDNA2DeviceIDs = map[uint16]Family{0x17f0: XDNA2}

// pciAddress matches a PCI bus address such as 0000:c4:00.1.
var pciAddress = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// Observation is what one scan saw of one accel entry whose PCI vendor and device
// ID are on the allow-list, whatever its driver and device node look like.
type Observation struct {
	// AccelName is the accel minor's name, e.g. "accel0".
	AccelName string
	// PCIAddress is the PCI bus address, e.g. "0000:c4:00.1"; the stable device ID.
	PCIAddress string
	// PCIDir is the resolved sysfs directory of the PCI device.
	PCIDir string
	// DeviceID is the PCI device ID, e.g. 0x1502.
	DeviceID uint16
	// Family is the family the allow-list maps DeviceID to.
	Family Family
	// Driver is the base name of the bound driver ("" when none is bound).
	Driver string
	// NUMANode is the PCI device's NUMA node, -1 when unknown.
	NUMANode int
	// Firmware, VBNV and DeviceType are amdxdna's sysfs attributes ("" when absent).
	Firmware, VBNV, DeviceType string
	// NodeErr says what is wrong with <dev>/accel/AccelName; nil when it is a
	// character device (matching sysfs's major:minor when sysfs states one).
	NodeErr error
}

// Scanner reads NPUs from a sysfs tree and a devfs tree.
type Scanner struct {
	// SysfsRoot is where sysfs is mounted ("/sys" on a host).
	SysfsRoot string
	// DevRoot is where devfs is mounted ("/dev" on a host).
	DevRoot string
	// DeviceIDs maps allowed AMD PCI device IDs to their family.
	DeviceIDs map[uint16]Family
}

// NodePath is the path of an accel node under the scanner's dev root.
func (s Scanner) NodePath(accelName string) string {
	return filepath.Join(s.DevRoot, "accel", accelName)
}

// ClassDir is the sysfs directory listing accel minors.
func (s Scanner) ClassDir() string { return filepath.Join(s.SysfsRoot, "class", "accel") }

// Scan lists every allow-listed accel device, sorted by PCI address. Entries of
// other vendors or device IDs are skipped; a missing class/accel directory means
// no devices (the accel subsystem is not loaded) rather than an error.
func (s Scanner) Scan() ([]Observation, error) {
	entries, err := os.ReadDir(s.ClassDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list accel devices: %w", err)
	}
	var out []Observation
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "accel") {
			continue
		}
		o, ok, err := s.observe(e.Name())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PCIAddress < out[j].PCIAddress })
	return out, nil
}

// observe reads one class/accel entry. ok is false for entries that are not
// allow-listed NPUs (or vanished while being read).
func (s Scanner) observe(accelName string) (o Observation, ok bool, err error) {
	entry := filepath.Join(s.ClassDir(), accelName)
	pciDir, err := filepath.EvalSymlinks(filepath.Join(entry, "device"))
	if err != nil {
		return o, false, nil // no PCI parent (or removed mid-scan): not ours
	}
	addr := filepath.Base(pciDir)
	if !pciAddress.MatchString(addr) {
		return o, false, nil
	}
	vendor, err := readHex16(filepath.Join(pciDir, "vendor"))
	if err != nil || vendor != VendorAMD {
		return o, false, nil
	}
	id, err := readHex16(filepath.Join(pciDir, "device"))
	if err != nil {
		return o, false, nil
	}
	family, allowed := s.DeviceIDs[id]
	if !allowed {
		return o, false, nil
	}
	o = Observation{
		AccelName:  accelName,
		PCIAddress: addr,
		PCIDir:     pciDir,
		DeviceID:   id,
		Family:     family,
		Driver:     DriverOf(pciDir),
		NUMANode:   readNUMANode(pciDir),
		Firmware:   readAttr(pciDir, "fw_version"),
		VBNV:       readAttr(pciDir, "vbnv"),
		DeviceType: readAttr(pciDir, "device_type"),
	}
	o.NodeErr = CheckNode(s.NodePath(accelName), readAttr(entry, "dev"))
	return o, true, nil
}

// DriverOf is the base name of the driver bound to the PCI device in pciDir, or ""
// when none is bound.
func DriverOf(pciDir string) string {
	target, err := os.Readlink(filepath.Join(pciDir, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// NodeMode is the permission bits a usable accel node has at least: read and
// write for its owner (amdxdna's nodes are 0600 root:root). The container
// runtime gives a container the node with the host node's mode and owner, and a
// process needs O_RDWR to drive the NPU, so without these bits a container
// could open it only with CAP_DAC_OVERRIDE.
const NodeMode = 0o600

// CheckNode verifies that path is a character device whose owner may read and
// write it (NodeMode) and, when wantDev ("major:minor", as in sysfs's `dev`
// attribute) is not empty, that its device number matches.
func CheckNode(path, wantDev string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("device node %s: missing", path)
		}
		return fmt.Errorf("device node %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("device node %s: is a %s, want a character device", path, FileKind(st.Mode))
	}
	if got := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)); wantDev != "" && got != wantDev {
		return fmt.Errorf("device node %s: device number %s, want %s (from sysfs)", path, got, wantDev)
	}
	if perm := st.Mode & 0o7777; perm&NodeMode != NodeMode {
		return fmt.Errorf("device node %s: mode %04o, want at least %04o (owner read and write): "+
			"containers get the node with this mode and could not open it", path, perm, NodeMode)
	}
	return nil
}

// FileKind names the type bits of a stat mode ("regular file", "directory", ...)
// for error messages.
func FileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "named pipe"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of mode %#o", mode&unix.S_IFMT)
}

// readAttr reads a sysfs attribute, trimmed; "" when absent or unreadable.
func readAttr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readHex16 parses a sysfs attribute such as "0x1022".
func readHex16(path string) (uint16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 16)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a 16-bit hex number", path, s)
	}
	return uint16(v), nil
}

// readNUMANode reads numa_node; -1 (the kernel's "no node") when absent or invalid.
func readNUMANode(pciDir string) int {
	n, err := strconv.Atoi(readAttr(pciDir, "numa_node"))
	if err != nil || n < 0 {
		return -1
	}
	return n
}
