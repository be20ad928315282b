// Package dra is xdna-dra-driver's logic: a Dynamic Resource Allocation kubelet
// plugin (on k8s.io/dynamic-resource-allocation's kubeletplugin) that publishes
// each AMD XDNA NPU of the node as one device in a ResourceSlice, with its
// hardware contexts as consumable capacity so that several claims can share an
// NPU, prepares claims by writing one CDI spec per claim, checkpoints prepared
// claims on disk, and republishes when NPUs come, go or turn unhealthy.
package dra

import (
	"fmt"
	"regexp"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/deviceattribute"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/amdxdna"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

// DefaultDriverName is the DRA driver name, the domain of its attributes and
// capacity, and the name of the DeviceClass the chart creates.
const DefaultDriverName = "npu.amd.com"

// Attribute and capacity names, qualified by the driver name in CEL:
// device.attributes["npu.amd.com"].family, device.capacity["npu.amd.com"].contexts.
const (
	// AttrFamily is the NPU generation, "xdna1" or "xdna2".
	AttrFamily resourceapi.QualifiedName = "family"
	// AttrPCIDeviceID is the PCI device ID, e.g. "0x1502".
	AttrPCIDeviceID resourceapi.QualifiedName = "pciDeviceID"
	// AttrFirmware is the NPU firmware version "major.minor.patch.build".
	AttrFirmware resourceapi.QualifiedName = "firmwareVersion"
	// AttrDriverVersion is the amdxdna driver's version, a semantic version
	// when it parses as one (CEL: .isGreaterThan(semver("0.6.0"))).
	AttrDriverVersion resourceapi.QualifiedName = "driverVersion"
	// AttrColumns and AttrRows are the AIE array's shape as the driver reports
	// it (5 × 6 on Phoenix; applications get columns 1–4).
	AttrColumns resourceapi.QualifiedName = "aieColumns"
	AttrRows    resourceapi.QualifiedName = "aieRows"
	// AttrVBNV is amdxdna's sysfs vbnv, e.g. "RyzenAI-npu1".
	AttrVBNV resourceapi.QualifiedName = "vbnv"
	// CapacityContexts is the NPU's hardware contexts, shared by claims.
	CapacityContexts resourceapi.QualifiedName = "contexts"
)

// TaintUnhealthy is the device taint key of an unhealthy NPU (UnhealthyTaint).
const TaintUnhealthy = "unhealthy"

// UnhealthyPolicy says what the published slice does with an unhealthy NPU.
type UnhealthyPolicy string

const (
	// UnhealthyTaint keeps an unhealthy NPU in the slice with a NoSchedule
	// taint "<driver>/unhealthy": nothing new is allocated on it and users see
	// why. Device taints are GA and on by default in Kubernetes 1.37 (beta and
	// on in 1.36); an API server without them drops the taint.
	UnhealthyTaint UnhealthyPolicy = "taint"
	// UnhealthyRemove leaves unhealthy NPUs out of the slice, whatever the
	// cluster's feature gates (for clusters before 1.36).
	UnhealthyRemove UnhealthyPolicy = "remove"
)

// DefaultContexts is the hardware-context count published when the driver
// does not report its limit (kernels before QUERY_RESOURCE_INFO): Phoenix and
// Hawk Point have 6.
const DefaultContexts = 6

// NPU is one device as the driver publishes and prepares it: discovery's view
// plus the amdxdna inventory.
type NPU struct {
	discovery.NPU
	// Info is what the amdxdna driver (or sysfs) told the inventory.
	Info amdxdna.Info
	// Contexts is the published context capacity.
	Contexts int
}

// DeviceName is the ResourceSlice device name of the NPU at a PCI address: a
// DNS label, "npu-" and the address with ':' and '.' as '-', e.g.
// "npu-0000-c4-00-1".
func DeviceName(pciAddress string) string {
	return "npu-" + strings.NewReplacer(":", "-", ".", "-").Replace(pciAddress)
}

// semver matches the versions Kubernetes accepts as a VersionValue's core.
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$`)

// Device is the ResourceSlice entry of one NPU: attributes, the contexts
// capacity (each request takes 1 to Contexts, 1 when it does not say), and
// AllowMultipleAllocations so claims share it.
func Device(n NPU) resourceapi.Device {
	attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		AttrFamily:      {StringValue: ptr.To(string(n.Family))},
		AttrPCIDeviceID: {StringValue: ptr.To(fmt.Sprintf("0x%04x", n.DeviceID))},
		deviceattribute.StandardDeviceAttributePCIBusID: {StringValue: ptr.To(n.PCIAddress)},
	}
	if a, err := deviceattribute.GetNUMANodeAttribute(n.NUMANode, deviceattribute.ScalarAttribute); err == nil {
		attrs[a.Name] = a.Value // no attribute without NUMA affinity (-1)
	}
	if fw := firstNonEmpty(n.Info.Firmware, n.Firmware); fw != "" {
		attrs[AttrFirmware] = resourceapi.DeviceAttribute{StringValue: ptr.To(fw)}
	}
	if v := n.Info.DriverVersion; v != "" {
		if semver.MatchString(v) {
			attrs[AttrDriverVersion] = resourceapi.DeviceAttribute{VersionValue: ptr.To(v)}
		} else {
			attrs[AttrDriverVersion] = resourceapi.DeviceAttribute{StringValue: ptr.To(v)}
		}
	}
	if n.Info.Columns > 0 {
		attrs[AttrColumns] = resourceapi.DeviceAttribute{IntValue: ptr.To(int64(n.Info.Columns))}
		attrs[AttrRows] = resourceapi.DeviceAttribute{IntValue: ptr.To(int64(n.Info.Rows))}
	}
	if v := firstNonEmpty(n.Info.VBNV, n.VBNV); v != "" {
		attrs[AttrVBNV] = resourceapi.DeviceAttribute{StringValue: ptr.To(v)}
	}
	total := resource.MustParse(fmt.Sprint(n.Contexts))
	return resourceapi.Device{
		Name:       DeviceName(n.PCIAddress),
		Attributes: attrs,
		Capacity: map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{
			CapacityContexts: {
				Value: total,
				RequestPolicy: &resourceapi.CapacityRequestPolicy{
					Default: ptr.To(resource.MustParse("1")),
					ValidRange: &resourceapi.CapacityRequestPolicyRange{
						Min:  ptr.To(resource.MustParse("1")),
						Max:  ptr.To(total.DeepCopy()),
						Step: ptr.To(resource.MustParse("1")),
					},
				},
			},
		},
		AllowMultipleAllocations: ptr.To(true),
	}
}

// Resources is the driver's one pool (named after the node) with one slice
// holding every NPU the policy publishes: healthy ones always, unhealthy ones
// only tainted under UnhealthyTaint.
func Resources(pool string, npus []NPU, policy UnhealthyPolicy, driverName string) resourceslice.DriverResources {
	devices := []resourceapi.Device{}
	for _, n := range npus {
		if !n.Healthy && policy != UnhealthyTaint {
			continue
		}
		d := Device(n)
		if !n.Healthy {
			d.Taints = []resourceapi.DeviceTaint{{
				Key: driverName + "/" + TaintUnhealthy, Effect: resourceapi.DeviceTaintEffectNoSchedule,
			}}
		}
		devices = append(devices, d)
	}
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{
		pool: {Slices: []resourceslice.Slice{{Devices: devices}}},
	}}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// DeviceClass is the class claims name to get an NPU of this driver: every
// device the driver publishes. The chart creates it.
func DeviceClass(driverName string) *resourceapi.DeviceClass {
	return &resourceapi.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: driverName},
		Spec: resourceapi.DeviceClassSpec{Selectors: []resourceapi.DeviceSelector{{
			CEL: &resourceapi.CELDeviceSelector{Expression: fmt.Sprintf("device.driver == %q", driverName)},
		}}},
	}
}
