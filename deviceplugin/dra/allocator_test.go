package dra

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

// features are kube-scheduler's allocator features with Kubernetes 1.37's
// default feature gates (pkg/features/kube_features.go at v1.37.2, mapped as
// its dynamicresources.AllocatorFeatures does): consumable capacity and
// partitionable devices beta and on since 1.36, device taints GA in 1.37.
var features = structured.Features{
	AdminAccess: true, PrioritizedList: true, PartitionableDevices: true, DeviceTaints: true,
	DeviceBindingAndStatus: true, ConsumableCapacity: true, FractionalCapacityRange: true,
}

// classes lists the one DeviceClass the chart creates.
type classes []*resourceapi.DeviceClass

func (c classes) List() ([]*resourceapi.DeviceClass, error) { return c, nil }
func (c classes) Get(name string) (*resourceapi.DeviceClass, error) {
	for _, dc := range c {
		if dc.Name == name {
			return dc, nil
		}
	}
	return nil, fmt.Errorf("device class %q not found", name)
}

// claimFor asks the NPU class for one NPU with n contexts, and optional CEL.
func claimFor(name string, n int64, selector string) *resourceapi.ResourceClaim {
	req := &resourceapi.ExactDeviceRequest{
		DeviceClassName: DefaultDriverName,
		AllocationMode:  resourceapi.DeviceAllocationModeExactCount,
		Count:           1,
		Capacity: &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{
			CapacityContexts: *resource.NewQuantity(n, resource.DecimalSI),
		}},
	}
	if selector != "" {
		req.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: selector}}}
	}
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
			Requests: []resourceapi.DeviceRequest{{Name: "npu", Exactly: req}},
		}},
	}
}

// cluster allocates claims one at a time over fixed slices, keeping the
// allocated state the way kube-scheduler derives it from allocated claims.
type cluster struct {
	t        *testing.T
	features structured.Features
	slices   []*resourceapi.ResourceSlice
	state    structured.AllocatedState
	cache    *cel.Cache
}

func newCluster(t *testing.T, slices []*resourceapi.ResourceSlice) *cluster {
	return &cluster{t: t, features: features, slices: slices, cache: cel.NewCache(10, cel.Features{}), state: structured.AllocatedState{
		AllocatedDevices:         sets.New[structured.DeviceID](),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}}
}

// allocate runs the structured allocator for one claim on the test node and
// records the result; nil means it does not fit.
func (c *cluster) allocate(claim *resourceapi.ResourceClaim) *resourceapi.AllocationResult {
	c.t.Helper()
	a, err := structured.NewAllocator(context.Background(), c.features, c.state,
		classes{DeviceClass(DefaultDriverName)}, c.slices, c.cache)
	if err != nil {
		c.t.Fatal(err)
	}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}
	res, err := a.Allocate(context.Background(), node, []*resourceapi.ResourceClaim{claim})
	if err != nil {
		c.t.Fatalf("allocate %s: %v", claim.Name, err)
	}
	if len(res) == 0 {
		return nil
	}
	for _, r := range res[0].Devices.Results {
		id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
		if r.ShareID == nil {
			c.state.AllocatedDevices.Insert(id)
			continue
		}
		c.state.AllocatedSharedDeviceIDs.Insert(structured.MakeSharedDeviceID(id, r.ShareID))
		c.state.AggregatedCapacity.Insert(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
	}
	claim.Status.Allocation = &res[0]
	return &res[0]
}

// publishedSlices runs the driver over a fake host and returns its slices.
func publishedSlices(t *testing.T, h *fakehost.Host) ([]*resourceapi.ResourceSlice, *Driver) {
	t.Helper()
	d := newDriver(t, h, Options{})
	pub := &capture{}
	scanOnce(t, d, pub)
	return slicesOf(pub.last, DefaultDriverName), d
}

// Three claims of 2 contexts share one Phoenix NPU (6 contexts); a fourth
// does not fit anywhere.
func TestAllocatorSharesContextsAndExhausts(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	slices, _ := publishedSlices(t, h)
	c := newCluster(t, slices)
	shares := sets.New[types.UID]()
	for i := 1; i <= 3; i++ {
		claim := claimFor(fmt.Sprintf("enc-%d", i), 2, "")
		res := c.allocate(claim)
		if res == nil {
			t.Fatalf("claim %d of 2 contexts did not fit (3 × 2 ≤ 6)", i)
		}
		r := res.Devices.Results[0]
		if r.Device != "npu-0000-c4-00-1" || r.ShareID == nil {
			t.Fatalf("claim %d: device %s share %v, want a share of npu-0000-c4-00-1", i, r.Device, r.ShareID)
		}
		if got := r.ConsumedCapacity[CapacityContexts]; got.Value() != 2 {
			t.Errorf("claim %d consumed %s contexts, want 2", i, got.String())
		}
		shares.Insert(*r.ShareID)
	}
	if shares.Len() != 3 {
		t.Errorf("%d distinct shares, want 3", shares.Len())
	}
	if res := c.allocate(claimFor("enc-4", 2, "")); res != nil {
		t.Fatalf("a fourth 2-context claim was allocated on a full NPU: %+v", res.Devices.Results)
	}
	// One context is not left either: the capacity is exhausted exactly.
	if res := c.allocate(claimFor("enc-5", 1, "")); res != nil {
		t.Fatal("a 1-context claim was allocated on an NPU with 0 contexts left")
	}
}

// A request larger than the NPU is refused, and one without a capacity request
// takes the policy's default of 1 context.
func TestAllocatorRequestPolicy(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	slices, _ := publishedSlices(t, h)
	c := newCluster(t, slices)
	if res := c.allocate(claimFor("huge", 7, "")); res != nil {
		t.Fatal("a 7-context claim was allocated on a 6-context NPU")
	}
	claim := claimFor("default", 1, "")
	claim.Spec.Devices.Requests[0].Exactly.Capacity = nil
	res := c.allocate(claim)
	if res == nil {
		t.Fatal("a claim without a capacity request was not allocated")
	}
	if got := res.Devices.Results[0].ConsumedCapacity[CapacityContexts]; got.Value() != 1 {
		t.Errorf("default consumption %s contexts, want 1", got.String())
	}
}

// A CEL selector on the published firmware attribute picks the matching NPU
// of two, and nothing when none matches.
func TestAllocatorCELOnFirmware(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1, Firmware: "1.5.5.391", NUMA: 1})
	slices, _ := publishedSlices(t, h)
	c := newCluster(t, slices)
	sel := `device.attributes["npu.amd.com"].firmwareVersion == "1.5.5.391"`
	for i := 0; i < 3; i++ {
		res := c.allocate(claimFor(fmt.Sprintf("new-fw-%d", i), 2, sel))
		if res == nil {
			t.Fatalf("claim %d with the firmware selector not allocated", i)
		}
		if d := res.Devices.Results[0].Device; d != "npu-0000-c5-00-1" {
			t.Fatalf("claim %d got %s, want npu-0000-c5-00-1 (firmware 1.5.5.391)", i, d)
		}
	}
	// That NPU is full; the other has room but the wrong firmware.
	if res := c.allocate(claimFor("new-fw-3", 2, sel)); res != nil {
		t.Fatalf("selector ignored: got %s", res.Devices.Results[0].Device)
	}
	numa := `device.attributes["resource.kubernetes.io"].numaNode == 0 && device.attributes["npu.amd.com"].family == "xdna1"`
	if res := c.allocate(claimFor("numa0", 6, numa)); res == nil || res.Devices.Results[0].Device != "npu-0000-c4-00-1" {
		t.Fatalf("NUMA/family selector: %+v", res)
	}
	if res := c.allocate(claimFor("none", 1, `device.attributes["npu.amd.com"].firmwareVersion.startsWith("2.")`)); res != nil {
		t.Fatal("a selector no NPU matches was allocated")
	}
}

// The allocation results name what the driver prepares: prepare the three
// shared claims, refuse a fourth forced past the scheduler.
func TestAllocatedClaimsPrepare(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	slices, d := publishedSlices(t, h)
	c := newCluster(t, slices)
	var claims []*resourceapi.ResourceClaim
	for i := 0; i < 3; i++ {
		claim := claimFor(fmt.Sprintf("enc-%d", i), 2, "")
		if c.allocate(claim) == nil {
			t.Fatal("not allocated")
		}
		claims = append(claims, claim)
	}
	res, err := d.PrepareResourceClaims(context.Background(), claims)
	if err != nil {
		t.Fatal(err)
	}
	for _, claim := range claims {
		if r := res[claim.UID]; r.Err != nil || len(r.Devices) != 1 || r.Devices[0].ShareID == nil {
			t.Errorf("claim %s: %+v", claim.Name, r)
		}
	}
	// A fourth claim allocated by something that ignored capacity.
	forced := claimFor("forced", 2, "")
	forced.Status.Allocation = claims[0].Status.Allocation.DeepCopy()
	forced.UID = "uid-forced"
	res, err = d.PrepareResourceClaims(context.Background(), []*resourceapi.ResourceClaim{forced})
	if err != nil {
		t.Fatal(err)
	}
	if e := res[forced.UID].Err; e == nil || !strings.Contains(e.Error(), "has 6 of 6 hardware contexts prepared for other claims, cannot add 2") {
		t.Fatalf("over-committed claim: err = %v", e)
	}
}
