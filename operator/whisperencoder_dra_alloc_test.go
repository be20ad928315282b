package operator

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/dra"
)

// schedulerFeatures are kube-scheduler 1.37's allocator features with its default feature
// gates (consumable capacity on since 1.36).
var schedulerFeatures = structured.Features{
	AdminAccess: true, PrioritizedList: true, PartitionableDevices: true, DeviceTaints: true,
	DeviceBindingAndStatus: true, ConsumableCapacity: true, FractionalCapacityRange: true,
}

// deviceClasses is the chart's one DeviceClass, as the allocator lists it.
type deviceClasses []*resourcev1.DeviceClass

func (c deviceClasses) List() ([]*resourcev1.DeviceClass, error) { return c, nil }
func (c deviceClasses) Get(name string) (*resourcev1.DeviceClass, error) {
	for _, dc := range c {
		if dc.Name == name {
			return dc, nil
		}
	}
	return nil, fmt.Errorf("device class %q not found", name)
}

// TestDRAClaimFitsTheDriversDevice: the claims the operator's template makes are allocated by
// the scheduler's structured allocator on the device xdna-dra-driver publishes — three pods of 2
// contexts share one 6-context NPU, a fourth does not fit. A capacity name the device does not
// publish (the qualified "npu.amd.com/contexts" the operator once asked for) matches no device,
// which only the real scheduler on the e2e node showed.
func TestDRAClaimFitsTheDriversDevice(t *testing.T) {
	const node = "node-a"
	npu := dra.NPU{Contexts: 6, NPU: discovery.NPU{PCIAddress: "0000:c4:00.1", DeviceID: 0x1502,
		Family: discovery.XDNA1, NUMANode: -1, Firmware: "1.5.2.380", Healthy: true}}
	slice := &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-npu"},
		Spec: resourcev1.ResourceSliceSpec{Driver: dra.DefaultDriverName, NodeName: ptr.To(node),
			Pool:    resourcev1.ResourcePool{Name: node, ResourceSliceCount: 1},
			Devices: []resourcev1.Device{dra.Device(npu)}},
	}
	state := structured.AllocatedState{
		AllocatedDevices:         sets.New[structured.DeviceID](),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}
	we := draEncoder() // 2 contexts, a CEL selector on the firmware
	for i := range 4 {
		claim := &resourcev1.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("claim-", i), Namespace: "ns", UID: types.UID(fmt.Sprint("uid-", i))},
			Spec:       npuClaimTemplate(we).Spec.Spec,
		}
		res := allocateClaim(t, state, slice, claim, node)
		if i == 3 {
			if res != nil {
				t.Fatalf("a fourth claim of 2 contexts was allocated on a 6-context NPU: %+v", res.Devices.Results)
			}
			return
		}
		if res == nil {
			t.Fatalf("claim %d of 2 contexts (%d of 6 in use) was not allocated", i, 2*i)
		}
		r := res.Devices.Results[0]
		if got := r.ConsumedCapacity[dra.CapacityContexts]; got.Value() != 2 {
			t.Fatalf("claim %d consumed %v, want 2 contexts", i, r.ConsumedCapacity)
		}
		id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
		state.AllocatedSharedDeviceIDs.Insert(structured.MakeSharedDeviceID(id, r.ShareID))
		state.AggregatedCapacity.Insert(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
	}
}

// allocateClaim runs the allocator for one claim on node; nil when it does not fit.
func allocateClaim(t *testing.T, state structured.AllocatedState, slice *resourcev1.ResourceSlice,
	claim *resourcev1.ResourceClaim, node string) *resourcev1.AllocationResult {
	t.Helper()
	ctx := context.Background()
	a, err := structured.NewAllocator(ctx, schedulerFeatures, state,
		deviceClasses{dra.DeviceClass(dra.DefaultDriverName)}, []*resourcev1.ResourceSlice{slice}, cel.NewCache(10, cel.Features{}))
	must(t, err)
	res, err := a.Allocate(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, []*resourcev1.ResourceClaim{claim})
	must(t, err)
	if len(res) == 0 {
		return nil
	}
	return &res[0]
}
