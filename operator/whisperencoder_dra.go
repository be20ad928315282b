package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// NPUs by Dynamic Resource Allocation (spec.npu.allocation dra): the operator creates a
// ResourceClaimTemplate asking for spec.npu.count NPUs of the DeviceClass the chart installs,
// each with spec.npu.contexts of its hardware contexts (consumable capacity), and the encoder
// pods name it instead of the device plugin's extended resource; the scheduler allocates a
// claim per pod and xdna-dra-driver prepares it.
//
// The names below are the DRA driver's (deviceplugin/dra); the operator keeps its own copies
// so that it does not depend on the node agent, and TestDRANamesAreTheDriversOnes keeps them
// equal.
const (
	// draDeviceClass is the DeviceClass the chart creates for the driver.
	draDeviceClass = "npu.amd.com"
	// draContextsCapacity is the NPU's hardware contexts, named as the driver's ResourceSlice
	// names the capacity: the scheduler's allocator matches a claim's capacity request to the
	// device's capacity by that exact name (a qualified "npu.amd.com/contexts" matches no device;
	// only CEL qualifies it, device.capacity["npu.amd.com"].contexts).
	draContextsCapacity resourcev1.QualifiedName = "contexts"
	// npuClaimName names the claim in the pod and in the container's resources.claims.
	npuClaimName = "npu"
)

// usesDRA says whether encoder pods of spec (defaulted) get their NPU by a DRA claim.
func usesDRA(spec whisperv1.WhisperEncoderSpec) bool {
	return podBackend(spec) == whisperv1.BackendNPU && spec.NPU.Allocation == whisperv1.NPUAllocationDRA
}

// npuClaimSpec is the claim each encoder pod gets with allocation dra.
func npuClaimSpec(n whisperv1.NPUSpec) resourcev1.ResourceClaimSpec {
	req := &resourcev1.ExactDeviceRequest{
		DeviceClassName: draDeviceClass,
		AllocationMode:  resourcev1.DeviceAllocationModeExactCount,
		Count:           int64(n.Count),
		Capacity: &resourcev1.CapacityRequirements{Requests: map[resourcev1.QualifiedName]resource.Quantity{
			draContextsCapacity: *resource.NewQuantity(int64(n.Contexts), resource.DecimalSI),
		}},
	}
	if n.Selector != "" {
		req.Selectors = []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: n.Selector}}}
	}
	return resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
		Requests: []resourcev1.DeviceRequest{{Name: npuClaimName, Exactly: req}},
	}}
}

// npuClaimTemplateName names the template after its content: a template's spec cannot be
// changed in place, so a changed request is a new template (and a new pod template, which rolls
// the Deployment), and the old one is deleted once no pod template names it.
func npuClaimTemplateName(we *whisperv1.WhisperEncoder, n whisperv1.NPUSpec) string {
	b, err := json.Marshal(npuClaimSpec(n))
	if err != nil {
		panic(fmt.Sprintf("claim spec does not marshal: %v", err)) // API types always marshal
	}
	sum := sha256.Sum256(b)
	return we.Name + "-npu-" + hex.EncodeToString(sum[:5])
}

// npuClaimTemplate builds the ResourceClaimTemplate of we's encoder pods, controlled by we.
// The claims made from it carry the encoder's labels (kubectl get resourceclaims -l
// whisper.xdna.io/encoder=<name>).
func npuClaimTemplate(we *whisperv1.WhisperEncoder) *resourcev1.ResourceClaimTemplate {
	n := we.Spec.Defaulted().NPU
	meta := controlledMeta(we)
	meta.Name = npuClaimTemplateName(we, n)
	return &resourcev1.ResourceClaimTemplate{
		ObjectMeta: meta,
		Spec: resourcev1.ResourceClaimTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: encoderLabels(we)},
			Spec:       npuClaimSpec(n),
		},
	}
}

// withNPUClaim makes the pod spec claim the NPU through template: the pod's claim and the
// encoder container's use of it.
func withNPUClaim(pod *corev1.PodSpec, template string) {
	pod.ResourceClaims = []corev1.PodResourceClaim{{Name: npuClaimName, ResourceClaimTemplateName: &template}}
	c := &pod.Containers[0]
	c.Resources.Claims = []corev1.ResourceClaim{{Name: npuClaimName}}
}

// claimTemplatesNamed lists the ResourceClaimTemplates a pod spec names.
func claimTemplatesNamed(pod corev1.PodSpec) []string {
	var out []string
	for _, c := range pod.ResourceClaims {
		if c.ResourceClaimTemplateName != nil {
			out = append(out, *c.ResourceClaimTemplateName)
		}
	}
	return out
}

// applyNPUClaimTemplate creates or updates the template we's pods will name, when they use DRA.
func (r *Reconciler) applyNPUClaimTemplate(ctx context.Context, we *whisperv1.WhisperEncoder) error {
	if !usesDRA(we.Spec.Defaulted()) {
		return nil
	}
	_, err := apply(ctx, r.Client, npuClaimTemplate(we), nil)
	return err
}

// pruneNPUClaimTemplates deletes the templates the previous Deployment's pods named and the
// current ones do not (allocation switched back, or the request changed). Pods already running
// keep their claims; only templates we controls are deleted. prev is nil for a new Deployment.
func (r *Reconciler) pruneNPUClaimTemplates(ctx context.Context, we *whisperv1.WhisperEncoder, prev, cur *appsv1.Deployment) error {
	if prev == nil {
		return nil
	}
	keep := map[string]bool{}
	for _, n := range claimTemplatesNamed(cur.Spec.Template.Spec) {
		keep[n] = true
	}
	for _, name := range claimTemplatesNamed(prev.Spec.Template.Spec) {
		if keep[name] {
			continue
		}
		old, err := getOptional(ctx, r.Client, we.Namespace, name, &resourcev1.ResourceClaimTemplate{})
		if meta.IsNoMatchError(err) {
			continue // the cluster does not serve resource.k8s.io/v1: nothing to delete
		}
		if err != nil || old == nil || !metav1.IsControlledBy(old, we) {
			return err
		}
		if err := r.Client.Delete(ctx, old, client.Preconditions{UID: &old.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete ResourceClaimTemplate %s/%s: %w", we.Namespace, name, err)
		}
	}
	return nil
}
