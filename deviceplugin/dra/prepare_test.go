package dra

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/cdi"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

func TestPublishedDevice(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380", NUMA: 0})
	d := newDriver(t, h, Options{})
	pub := &capture{}
	scanOnce(t, d, pub)
	devs := pub.devices()
	if len(devs) != 1 {
		t.Fatalf("%d devices published, want 1", len(devs))
	}
	want := resourceapi.Device{
		Name: "npu-0000-c4-00-1",
		Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
			"family":                          {StringValue: ptr.To("xdna1")},
			"pciDeviceID":                     {StringValue: ptr.To("0x1502")},
			"firmwareVersion":                 {StringValue: ptr.To("1.5.2.380")},
			"vbnv":                            {StringValue: ptr.To("RyzenAI-npu1")},
			"resource.kubernetes.io/pciBusID": {StringValue: ptr.To("0000:c4:00.1")},
			"resource.kubernetes.io/numaNode": {IntValue: ptr.To(int64(0))},
		},
		Capacity: map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{
			"contexts": {Value: resource.MustParse("6"), RequestPolicy: &resourceapi.CapacityRequestPolicy{
				Default: ptr.To(resource.MustParse("1")),
				ValidRange: &resourceapi.CapacityRequestPolicyRange{
					Min: ptr.To(resource.MustParse("1")), Max: ptr.To(resource.MustParse("6")), Step: ptr.To(resource.MustParse("1")),
				},
			}},
		},
		AllowMultipleAllocations: ptr.To(true),
	}
	if diff := cmp.Diff(want, devs[0]); diff != "" {
		t.Errorf("device (-want +got):\n%s", diff)
	}
	// The fake node has no driver behind major 261: the inventory says why
	// it fell back to sysfs.
	n := d.npus["npu-0000-c4-00-1"]
	if len(n.Info.Notes) == 0 || !strings.Contains(n.Info.Notes[0], "cannot open") {
		t.Errorf("inventory notes %q, want the failed open explained", n.Info.Notes)
	}
}

// allocated is a claim allocated to device with n contexts as a share.
func allocated(name, device string, n int64) *resourceapi.ResourceClaim {
	share := types.UID("share-" + name)
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml", UID: types.UID("uid-" + name)},
		Status: resourceapi.ResourceClaimStatus{Allocation: &resourceapi.AllocationResult{
			Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{{
				Request: "npu", Driver: DefaultDriverName, Pool: testNode, Device: device, ShareID: &share,
				ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{CapacityContexts: *resource.NewQuantity(n, resource.DecimalSI)},
			}}},
		}},
	}
}

func prepareOne(t *testing.T, d *Driver, c *resourceapi.ResourceClaim) kubeletplugin.PrepareResult {
	t.Helper()
	res, err := d.PrepareResourceClaims(context.Background(), []*resourceapi.ResourceClaim{c})
	if err != nil {
		t.Fatal(err)
	}
	return res[c.UID]
}

func unprepareOne(t *testing.T, d *Driver, c *resourceapi.ResourceClaim) error {
	t.Helper()
	res, err := d.UnprepareResourceClaims(context.Background(), []kubeletplugin.NamespacedObject{{
		UID: c.UID, NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}}})
	if err != nil {
		t.Fatal(err)
	}
	return res[c.UID]
}

func readSpec(t *testing.T, path string) cdi.Spec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s cdi.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPrepareUnprepareSurvivesRestart(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 3, Firmware: "1.5.2.380"})
	state, cdiDir := t.TempDir(), t.TempDir()
	d := newDriver(t, h, Options{StateDir: state, CDIDir: cdiDir, HostDevRoot: "/host/dev"})
	scanOnce(t, d, &capture{})

	c := allocated("enc", "npu-0000-c4-00-1", 2)
	r := prepareOne(t, d, c)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	wantID := "npu.amd.com/npu=uid-enc-0-npu-0000-c4-00-1"
	if len(r.Devices) != 1 || r.Devices[0].CDIDeviceIDs[0] != wantID || r.Devices[0].PoolName != testNode ||
		r.Devices[0].DeviceName != "npu-0000-c4-00-1" || *r.Devices[0].ShareID != "share-enc" {
		t.Fatalf("prepare result %+v, want CDI device %s", r.Devices, wantID)
	}
	specPath := filepath.Join(cdiDir, "npu.amd.com-claim-uid-enc.json")
	spec := readSpec(t, specPath)
	wantSpec := cdi.Spec{Version: cdi.Version, Kind: "npu.amd.com/npu", Devices: []cdi.Device{{
		Name: "uid-enc-0-npu-0000-c4-00-1",
		ContainerEdits: cdi.Edits{
			DeviceNodes: []cdi.DeviceNode{{Path: "/dev/accel/accel3", HostPath: "/host/dev/accel/accel3", Permissions: "rw",
				Type: "c", Major: ptr.To[int64](fakehost.AccelMajor), Minor: ptr.To[int64](3),
				FileMode: ptr.To[os.FileMode](0o600), UID: ptr.To[uint32](0), GID: ptr.To[uint32](0)}},
			Env: []string{"XDNA_DEVICES=/dev/accel/accel3", "XDNA_PCI_ADDRESSES=0000:c4:00.1",
				"XDNA_CONTEXTS=2", "XDNA_MEMLOCK_BYTES=67108864"},
		},
	}}}
	if diff := cmp.Diff(wantSpec, spec); diff != "" {
		t.Errorf("CDI spec (-want +got):\n%s", diff)
	}

	// Idempotent: the kubelet asks again (e.g. after its restart); the
	// contexts are not counted twice and a lost spec comes back.
	if err := os.Remove(specPath); err != nil {
		t.Fatal(err)
	}
	if r2 := prepareOne(t, d, c); r2.Err != nil || !cmp.Equal(r.Devices, r2.Devices) {
		t.Fatalf("second prepare %+v, want %+v", r2, r)
	}
	if _, err := os.Stat(specPath); err != nil {
		t.Fatalf("spec not rewritten: %v", err)
	}
	if got := d.contextsInUse()["npu-0000-c4-00-1"]; got != 2 {
		t.Errorf("contexts in use %d after a repeated prepare, want 2", got)
	}

	// Driver restart: a new process reads the checkpoint, still counts the
	// contexts, and can unprepare what the old one prepared.
	d2 := newDriver(t, h, Options{StateDir: state, CDIDir: cdiDir, HostDevRoot: "/host/dev"})
	scanOnce(t, d2, &capture{})
	if _, ok := d2.Prepared()["uid-enc"]; !ok {
		t.Fatalf("restarted driver lost the claim: %+v", d2.Prepared())
	}
	if r := prepareOne(t, d2, allocated("big", "npu-0000-c4-00-1", 5)); r.Err == nil {
		t.Error("restarted driver prepared 5 contexts on an NPU with 2 of 6 in use")
	}
	if err := unprepareOne(t, d2, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(specPath); !os.IsNotExist(err) {
		t.Errorf("spec still there after unprepare: %v", err)
	}
	if len(d2.Prepared()) != 0 {
		t.Errorf("claims left: %+v", d2.Prepared())
	}
	d3 := newDriver(t, h, Options{StateDir: state, CDIDir: cdiDir})
	if len(d3.Prepared()) != 0 {
		t.Errorf("checkpoint still lists %+v after unprepare", d3.Prepared())
	}
	// Unpreparing again, or a claim never seen, succeeds.
	if err := unprepareOne(t, d3, c); err != nil {
		t.Errorf("second unprepare: %v", err)
	}
	if err := unprepareOne(t, d3, allocated("never", "x", 1)); err != nil {
		t.Errorf("unprepare of an unknown claim: %v", err)
	}
	if entries, _ := os.ReadDir(cdiDir); len(entries) != 0 {
		t.Errorf("CDI dir not empty: %v", entries)
	}
}

// TestPrepareMirrorsHostNode: the claim's node gets the host node's mode and
// group as they are when the claim is prepared; a regular file in place of the
// node refuses the claim, writing neither spec nor checkpoint entry.
func TestPrepareMirrorsHostNode(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	state, cdiDir := t.TempDir(), t.TempDir()
	d := newDriver(t, h, Options{StateDir: state, CDIDir: cdiDir})
	scanOnce(t, d, &capture{})
	h.Chmod(0, 0o660)
	if err := os.Chown(h.NodePath(0), 0, 44); err != nil {
		t.Fatal(err)
	}
	if r := prepareOne(t, d, allocated("a", "npu-0000-c4-00-1", 1)); r.Err != nil {
		t.Fatal(r.Err)
	}
	n := readSpec(t, filepath.Join(cdiDir, "npu.amd.com-claim-uid-a.json")).Devices[0].ContainerEdits.DeviceNodes[0]
	if n.FileMode == nil || *n.FileMode != 0o660 || n.UID == nil || *n.UID != 0 || n.GID == nil || *n.GID != 44 || n.HostPath != "/dev/accel/accel0" {
		t.Errorf("node %+v, want mode 0660 uid 0 gid 44 of %s, host path /dev/accel/accel0", n, h.NodePath(0))
	}

	h.ReplaceNodeWithFile(0)
	r := prepareOne(t, d, allocated("b", "npu-0000-c4-00-1", 1))
	if r.Err == nil || !strings.Contains(r.Err.Error(), h.NodePath(0)) ||
		!strings.Contains(r.Err.Error(), "is a regular file, want a character device") {
		t.Fatalf("prepare with a regular file for the node: %v, want an error naming %s and what it is", r.Err, h.NodePath(0))
	}
	if _, err := os.Stat(filepath.Join(cdiDir, "npu.amd.com-claim-uid-b.json")); !os.IsNotExist(err) {
		t.Errorf("refused claim's spec: %v, want none", err)
	}
	if _, ok := newDriver(t, h, Options{StateDir: state, CDIDir: cdiDir}).Prepared()["uid-b"]; ok {
		t.Error("refused claim is in the checkpoint")
	}
}

func TestPrepareRefusals(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1, Firmware: "1.5.2.380"})
	cdiDir := t.TempDir()
	d := newDriver(t, h, Options{CDIDir: cdiDir})
	h.RemoveNode(1)
	scanOnce(t, d, &capture{})

	wrongPool := allocated("pool", "npu-0000-c4-00-1", 1)
	wrongPool.Status.Allocation.Devices.Results[0].Pool = "node-b"
	unallocated := allocated("unalloc", "npu-0000-c4-00-1", 1)
	unallocated.Status.Allocation = nil
	other := allocated("other", "npu-0000-c4-00-1", 1)
	other.Status.Allocation.Devices.Results[0].Driver = "gpu.example.com"
	tests := []struct {
		claim *resourceapi.ResourceClaim
		want  string
	}{
		{allocated("unknown", "npu-0000-99-00-1", 1), "device npu-0000-99-00-1 is not an NPU of this node (known: npu-0000-c4-00-1, npu-0000-c5-00-1)"},
		{allocated("sick", "npu-0000-c5-00-1", 1), "NPU npu-0000-c5-00-1 is unhealthy: device node"},
		{allocated("toomany", "npu-0000-c4-00-1", 7), "has 0 of 6 hardware contexts prepared for other claims, cannot add 7"},
		{wrongPool, "is in pool node-b, this node's pool is node-a"},
		{unallocated, "is not allocated"},
		{other, "has no device of driver npu.amd.com"},
	}
	// Admin access (monitoring) takes no context: it is prepared even on a
	// full NPU.
	full := allocated("full", "npu-0000-c4-00-1", 6)
	if r := prepareOne(t, d, full); r.Err != nil {
		t.Fatal(r.Err)
	}
	admin := allocated("admin", "npu-0000-c4-00-1", 0)
	admin.Status.Allocation.Devices.Results[0].AdminAccess = ptr.To(true)
	admin.Status.Allocation.Devices.Results[0].ConsumedCapacity = nil
	if r := prepareOne(t, d, admin); r.Err != nil {
		t.Errorf("admin-access claim on a full NPU: %v", r.Err)
	}
	for _, c := range []*resourceapi.ResourceClaim{full, admin} {
		if err := unprepareOne(t, d, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range tests {
		r := prepareOne(t, d, tc.claim)
		if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
			t.Errorf("claim %s: err = %v, want %q", tc.claim.Name, r.Err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(cdiDir); len(entries) != 0 || len(d.Prepared()) != 0 {
		t.Errorf("refused claims left state: %v, %+v", entries, d.Prepared())
	}
}

func TestStartupCleansOrphansAndRefusesCorruptCheckpoint(t *testing.T) {
	h := fakehost.New(t)
	state, cdiDir := t.TempDir(), t.TempDir()
	orphan := filepath.Join(cdiDir, "npu.amd.com-claim-uid-gone.json")
	foreign := filepath.Join(cdiDir, "amd.com-npu.json") // the device plugin's spec
	for _, f := range []string{orphan, foreign} {
		if err := os.WriteFile(f, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	newDriver(t, h, Options{StateDir: state, CDIDir: cdiDir})
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphaned claim spec kept: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("another spec was removed: %v", err)
	}

	if err := os.WriteFile(filepath.Join(state, CheckpointFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{NodeName: testNode, StateDir: state, CDIDir: cdiDir}
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "checkpoint.json is corrupt") {
		t.Errorf("corrupt checkpoint: err = %v", err)
	}
	if _, err := New(Options{NodeName: testNode, StateDir: state, Unhealthy: "ignore"}); err == nil {
		t.Error("unknown unhealthy policy accepted")
	}
}
