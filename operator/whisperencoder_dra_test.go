package operator

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/dra"
)

// TestDRANamesAreTheDriversOnes: the operator's copies of the DeviceClass name and the
// contexts capacity are what xdna-dra-driver publishes (the test may import the driver; the
// operator itself does not).
func TestDRANamesAreTheDriversOnes(t *testing.T) {
	if got, want := draDeviceClass, dra.DeviceClass(dra.DefaultDriverName).Name; got != want {
		t.Errorf("operator's DeviceClass %q, the driver's %q", got, want)
	}
	if got, want := draContextsCapacity, dra.CapacityContexts; got != want {
		t.Errorf("operator's capacity %q, the driver's %q", got, want)
	}
}

func draEncoder(mut ...func(*whisperv1.WhisperEncoder)) *whisperv1.WhisperEncoder {
	return testEncoder(append([]func(*whisperv1.WhisperEncoder){func(we *whisperv1.WhisperEncoder) {
		we.Spec.Backend = whisperv1.BackendNPU
		we.Spec.NPU = whisperv1.NPUSpec{Allocation: whisperv1.NPUAllocationDRA, Contexts: 2,
			Selector: `device.attributes["npu.amd.com"].firmwareVersion == "1.5.2.380"`}
	}}, mut...)...)
}

// TestEncoderDeploymentDRA: with allocation dra the pod names the claim template and the
// container uses the claim, no extended resource is requested, and the NPU security context
// (root, IPC_LOCK) stays.
func TestEncoderDeploymentDRA(t *testing.T) {
	we := draEncoder()
	d := encoderDeployment(we, report.StageResult{Key: "key1", SizeBytes: 1 << 20}, testConfig())
	pod := d.Spec.Template.Spec
	tmpl := npuClaimTemplateName(we, we.Spec.Defaulted().NPU)
	if diff := cmp.Diff([]corev1.PodResourceClaim{{Name: "npu", ResourceClaimTemplateName: &tmpl}}, pod.ResourceClaims); diff != "" {
		t.Errorf("pod resourceClaims (-want +got):\n%s", diff)
	}
	c := pod.Containers[0]
	if diff := cmp.Diff([]corev1.ResourceClaim{{Name: "npu"}}, c.Resources.Claims); diff != "" {
		t.Errorf("container resources.claims (-want +got):\n%s", diff)
	}
	for name := range c.Resources.Limits {
		if strings.Contains(string(name), "/") {
			t.Errorf("limit %s with allocation dra: the claim stands for the NPU", name)
		}
	}
	if len(c.Resources.Requests) != 2 {
		t.Errorf("requests %v, want cpu and memory only", c.Resources.Requests)
	}
	if !hasCap(c.SecurityContext.Capabilities.Add, "IPC_LOCK") || *pod.SecurityContext.RunAsUser != 0 {
		t.Errorf("NPU security context lost with dra: %+v %+v", pod.SecurityContext, c.SecurityContext)
	}
	// backend auto (the CPU today) requests nothing, whatever the allocation says.
	cpu := draEncoder(func(we *whisperv1.WhisperEncoder) { we.Spec.Backend = whisperv1.BackendAuto })
	if p := encoderDeployment(cpu, report.StageResult{Key: "key1"}, testConfig()).Spec.Template.Spec; p.ResourceClaims != nil || p.Containers[0].Resources.Claims != nil {
		t.Errorf("backend auto claims an NPU: %+v", p.ResourceClaims)
	}
}

func hasCap(l []corev1.Capability, want corev1.Capability) bool {
	for _, c := range l {
		if c == want {
			return true
		}
	}
	return false
}

// TestNPUClaimTemplate: the template asks count NPUs of the class with contexts each and the
// CEL selector; it is named after its content, so a changed request gets a new name.
func TestNPUClaimTemplate(t *testing.T) {
	we := draEncoder(func(we *whisperv1.WhisperEncoder) { we.Spec.NPU.Count = 2 })
	got := npuClaimTemplate(we)
	want := resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
		Name: "npu", Exactly: &resourcev1.ExactDeviceRequest{
			DeviceClassName: "npu.amd.com", AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: 2,
			Capacity: &resourcev1.CapacityRequirements{Requests: map[resourcev1.QualifiedName]resource.Quantity{
				"contexts": resource.MustParse("2")}},
			Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{
				Expression: `device.attributes["npu.amd.com"].firmwareVersion == "1.5.2.380"`}}},
		},
	}}}}
	if diff := cmp.Diff(want, got.Spec.Spec); diff != "" {
		t.Errorf("claim spec (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got.Name, "base-npu-") || len(got.Name) != len("base-npu-")+10 {
		t.Errorf("template name %q, want base-npu-<10 hex digits>", got.Name)
	}
	if ref := got.OwnerReferences; len(ref) != 1 || !ptr.Deref(ref[0].Controller, false) || ref[0].Name != "base" {
		t.Errorf("owner %+v, want the WhisperEncoder as controller", ref)
	}
	if got.Labels[labelManagedBy] != managedBy || got.Spec.Labels[labelEncoder] != "base" {
		t.Errorf("labels %v, claims' labels %v: want the operator's and the encoder's", got.Labels, got.Spec.Labels)
	}
	names := map[string]bool{got.Name: true}
	for _, mut := range []func(*whisperv1.NPUSpec){
		func(n *whisperv1.NPUSpec) { n.Contexts = 3 },
		func(n *whisperv1.NPUSpec) { n.Count = 1 },
		func(n *whisperv1.NPUSpec) { n.Selector = "" },
	} {
		n := we.Spec.Defaulted().NPU
		mut(&n)
		name := npuClaimTemplateName(we, n)
		if names[name] {
			t.Errorf("request %+v reuses template name %s", n, name)
		}
		names[name] = true
	}
	// Without a selector none is sent (an empty CEL expression is invalid).
	plain := npuClaimSpec(whisperv1.NPUSpec{Count: 1, Contexts: 1})
	if s := plain.Devices.Requests[0].Exactly.Selectors; s != nil {
		t.Errorf("selectors %+v without spec.npu.selector", s)
	}
}
