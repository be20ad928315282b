// Package fakehost builds a host's sysfs and devfs trees for NPUs in a test's
// temporary directory, laid out as the kernel lays them out (relative symlinks for
// class/accel, `device` and `driver`; real character devices made with mknod), and
// changes them the way hot-unplug, driver unbind and udev do. mknod needs root;
// CI runs tests as root.
package fakehost

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// AccelMajor is the character major of amdxdna's accel nodes.
const AccelMajor = 261

// Host is a fake host: Sys and Dev are the roots to hand to the scanner.
type Host struct {
	t   testing.TB
	Sys string
	Dev string
}

// NPU describes one PCI device to create.
type NPU struct {
	// PCI is the bus address, e.g. "0000:c4:00.1".
	PCI string
	// Accel is the accel minor number (node accel<Accel>, minor <Accel>).
	Accel int
	// Vendor and Device are the PCI IDs; Vendor defaults to 0x1022, Device to 0x1502.
	Vendor, Device uint16
	// Driver is the bound driver's name; "amdxdna" when empty.
	Driver string
	// NUMA is the numa_node attribute's value.
	NUMA int
	// Firmware is the fw_version attribute; omitted when empty.
	Firmware string
}

// New makes the empty trees in t.TempDir().
func New(t testing.TB) *Host {
	t.Helper()
	root := t.TempDir()
	h := &Host{t: t, Sys: filepath.Join(root, "sys"), Dev: filepath.Join(root, "dev")}
	h.mkdir(filepath.Join(h.Sys, "class", "accel"))
	h.mkdir(filepath.Join(h.Dev, "accel"))
	return h
}

// PCIDir is the sysfs directory of a PCI device.
func (h *Host) PCIDir(pci string) string {
	return filepath.Join(h.Sys, "devices", "pci0000:00", pci)
}

// NodePath is the devfs path of accel<n>.
func (h *Host) NodePath(accel int) string {
	return filepath.Join(h.Dev, "accel", fmt.Sprintf("accel%d", accel))
}

// Add creates the PCI device, its accel class entry and its character node.
func (h *Host) Add(n NPU) {
	h.t.Helper()
	if n.Vendor == 0 {
		n.Vendor = 0x1022
	}
	if n.Device == 0 {
		n.Device = 0x1502
	}
	if n.Driver == "" {
		n.Driver = "amdxdna"
	}
	dir := h.PCIDir(n.PCI)
	h.mkdir(dir)
	h.write(filepath.Join(dir, "vendor"), fmt.Sprintf("0x%04x\n", n.Vendor))
	h.write(filepath.Join(dir, "device"), fmt.Sprintf("0x%04x\n", n.Device))
	h.write(filepath.Join(dir, "class"), "0x118000\n")
	h.write(filepath.Join(dir, "numa_node"), fmt.Sprintf("%d\n", n.NUMA))
	if n.Firmware != "" {
		h.write(filepath.Join(dir, "fw_version"), n.Firmware+"\n")
		h.write(filepath.Join(dir, "vbnv"), "RyzenAI-npu1\n")
		h.write(filepath.Join(dir, "device_type"), "1\n")
	}
	h.Bind(n.PCI, n.Driver)
	h.AddAccel(n.PCI, n.Accel)
}

// AddAccel creates accel<n>'s sysfs entry under the PCI device, its class link,
// and its node, as the kernel does when the driver probes.
func (h *Host) AddAccel(pci string, accel int) {
	h.t.Helper()
	name := fmt.Sprintf("accel%d", accel)
	entry := filepath.Join(h.PCIDir(pci), "accel", name)
	h.mkdir(entry)
	h.write(filepath.Join(entry, "dev"), fmt.Sprintf("%d:%d\n", AccelMajor, accel))
	h.symlink("../..", filepath.Join(entry, "device"))
	h.symlink(filepath.Join("..", "..", "devices", "pci0000:00", pci, "accel", name),
		filepath.Join(h.Sys, "class", "accel", name))
	h.Mknod(accel)
}

// RemoveAccel removes accel<n>'s class link, sysfs entry and node, as the kernel
// does when the driver is unbound.
func (h *Host) RemoveAccel(pci string, accel int) {
	h.t.Helper()
	name := fmt.Sprintf("accel%d", accel)
	h.remove(filepath.Join(h.Sys, "class", "accel", name))
	if err := os.RemoveAll(filepath.Join(h.PCIDir(pci), "accel", name)); err != nil {
		h.t.Fatal(err)
	}
	h.RemoveNode(accel)
}

// RootTestsVariable names the environment variable that, set to "required"
// (as `make test-deviceplugin` and `make test-kubelet` set it), turns the skip of
// RequireRoot into a failure.
const RootTestsVariable = "XDNA_ROOT_TESTS"

// RequireRoot skips t, saying why, when the process is not root — or fails it
// when RootTestsVariable is "required", so that CI cannot pass by skipping.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := fmt.Sprintf("needs root (%s); running as uid %d", why, os.Geteuid())
	if os.Getenv(RootTestsVariable) == "required" {
		t.Fatalf("%s, and %s=required", msg, RootTestsVariable)
	}
	t.Skipf("%s; run as root, or set %s=required to fail instead of skipping", msg, RootTestsVariable)
}

// Mknod creates the character node accel<n> (major 261, minor n). It needs
// root: without it the test is skipped (see RequireRoot).
func (h *Host) Mknod(accel int) {
	h.t.Helper()
	RequireRoot(h.t, "mknod of a character device node")
	p := h.NodePath(accel)
	if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(AccelMajor, uint32(accel)))); err != nil {
		h.t.Fatalf("mknod %s (tests that make device nodes must run as root): %v", p, err)
	}
}

// Chmod sets the permission bits of the node accel<n> (mknod makes it 0600).
func (h *Host) Chmod(accel int, mode os.FileMode) {
	h.t.Helper()
	if err := os.Chmod(h.NodePath(accel), mode); err != nil {
		h.t.Fatal(err)
	}
}

// RemoveNode deletes the node accel<n>.
func (h *Host) RemoveNode(accel int) {
	h.t.Helper()
	h.remove(h.NodePath(accel))
}

// ReplaceNodeWithFile puts a regular file where the node accel<n> was.
func (h *Host) ReplaceNodeWithFile(accel int) {
	h.t.Helper()
	h.RemoveNode(accel)
	h.write(h.NodePath(accel), "not a device\n")
}

// Bind points the PCI device's driver link at driver ("" unbinds).
func (h *Host) Bind(pci, driver string) {
	h.t.Helper()
	link := filepath.Join(h.PCIDir(pci), "driver")
	_ = os.Remove(link)
	if driver == "" {
		return
	}
	h.mkdir(filepath.Join(h.Sys, "bus", "pci", "drivers", driver))
	h.symlink(filepath.Join("..", "..", "..", "bus", "pci", "drivers", driver), link)
}

// RemovePCI removes the whole PCI device (hot-unplug): accel entries, class
// links, nodes and the device directory.
func (h *Host) RemovePCI(pci string, accel int) {
	h.t.Helper()
	h.RemoveAccel(pci, accel)
	if err := os.RemoveAll(h.PCIDir(pci)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *Host) mkdir(p string) {
	h.t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *Host) write(p, s string) {
	h.t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *Host) symlink(target, link string) {
	h.t.Helper()
	if err := os.Symlink(target, link); err != nil {
		h.t.Fatal(err)
	}
}

func (h *Host) remove(p string) {
	h.t.Helper()
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
}
