package operator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// allocationDRA asks for contexts hardware contexts of an NPU by DRA.
func allocationDRA(contexts int32) func(*whisperv1.WhisperEncoder) {
	return func(we *whisperv1.WhisperEncoder) {
		we.Spec.Backend = whisperv1.BackendNPU
		we.Spec.NPU.Allocation = whisperv1.NPUAllocationDRA
		we.Spec.NPU.Contexts = contexts
	}
}

// claimTemplateOf returns the one claim template the Deployment's pods name, checking the
// container uses the claim and requests no extended resource.
func claimTemplateOf(d *appsv1.Deployment) (string, error) {
	pod := d.Spec.Template.Spec
	names := claimTemplatesNamed(pod)
	if len(names) != 1 {
		return "", fmt.Errorf("pod names claim templates %q, want one", names)
	}
	c := pod.Containers[0]
	if len(c.Resources.Claims) != 1 || c.Resources.Claims[0].Name != npuClaimName {
		return "", fmt.Errorf("container claims %+v, want [npu]", c.Resources.Claims)
	}
	if _, ok := c.Resources.Limits["amd.com/npu"]; ok {
		return "", fmt.Errorf("amd.com/npu limit beside the claim")
	}
	return names[0], nil
}

// TestDRAAllocation: with allocation dra the encoder pods claim the NPU through a
// ResourceClaimTemplate the operator creates (accepted by a 1.37 API server with its
// consumable-capacity request), a changed request replaces the template and deletes the old
// one, going back to the device plugin deletes it too, and steady state writes nothing.
func TestDRAAllocation(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	op := startOperator(t, ns)
	we := newWE(ns, "dra", allocationDRA(2), func(we *whisperv1.WhisperEncoder) {
		we.Spec.NPU.Selector = `device.attributes["npu.amd.com"].firmwareVersion == "1.5.2.380"`
	})
	d := stageAndServe(t, we, "k-dra-0123456789abcdef")
	first, err := claimTemplateOf(d)
	must(t, err)
	var tmpl resourcev1.ResourceClaimTemplate
	eventually(t, 10*time.Second, "the claim template", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: first}, &tmpl)
	})
	req := tmpl.Spec.Spec.Devices.Requests[0].Exactly
	if req == nil || req.DeviceClassName != draDeviceClass || req.Capacity == nil || !contextsAre(req, 2) ||
		len(req.Selectors) != 1 || !metav1.IsControlledBy(&tmpl, getWEOrFail(t, ns, "dra")) {
		t.Fatalf("claim template as stored %+v (owners %+v): want class %s, 2 contexts, the selector, controlled by the encoder",
			req, tmpl.OwnerReferences, draDeviceClass)
	}
	rollOut(t, ns, "dra")
	waitPhase(t, ns, "dra", whisperv1.PhaseReady)
	assertSteadyState(t, op, ns, "dra")

	// A changed request: a new template, the Deployment names it, the old one goes.
	updateWE(t, ns, "dra", func(we *whisperv1.WhisperEncoder) { we.Spec.NPU.Contexts = 3 })
	second := waitClaimTemplate(t, ns, "dra", func(name string) bool { return name != "" && name != first })
	waitGone(t, ns, first)
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: second}, &tmpl))
	if req := tmpl.Spec.Spec.Devices.Requests[0].Exactly; !contextsAre(req, 3) {
		t.Errorf("new template asks %+v, want 3 contexts", req.Capacity)
	}

	// Back to the device plugin: the extended resource, no claim, no template.
	updateWE(t, ns, "dra", func(we *whisperv1.WhisperEncoder) { we.Spec.NPU.Allocation = whisperv1.NPUAllocationDevicePlugin })
	waitClaimTemplate(t, ns, "dra", func(name string) bool { return name == "" })
	waitGone(t, ns, second)
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dra"}, d))
	if q, ok := d.Spec.Template.Spec.Containers[0].Resources.Limits["amd.com/npu"]; !ok || q.Value() != 1 {
		t.Errorf("amd.com/npu limit %s after switching back to the device plugin, want 1", q.String())
	}
}

// contextsAre says whether req asks for n contexts of each NPU.
func contextsAre(req *resourcev1.ExactDeviceRequest, n int64) bool {
	if req.Capacity == nil {
		return false
	}
	q, ok := req.Capacity.Requests[draContextsCapacity]
	return ok && q.Value() == n
}

// TestDRAValidation: the API server refuses an unknown allocation and out-of-range contexts.
func TestDRAValidation(t *testing.T) {
	needEnvtest(t)
	ns := testNamespace(t, false)
	for i, tt := range []struct {
		mut  func(*whisperv1.WhisperEncoder)
		want string
	}{
		{func(we *whisperv1.WhisperEncoder) { we.Spec.NPU.Allocation = "sharedMemory" }, "spec.npu.allocation"},
		{func(we *whisperv1.WhisperEncoder) { we.Spec.NPU.Contexts = 65 }, "spec.npu.contexts"},
		{func(we *whisperv1.WhisperEncoder) { we.Spec.NPU.Contexts = -1 }, "spec.npu.contexts"},
	} {
		err := k8s.Create(context.Background(), newWE(ns, fmt.Sprintf("bad-%d", i), tt.mut))
		if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("case %d: error %v, want Invalid mentioning %s", i, err, tt.want)
		}
	}
}

// getWEOrFail reads a WhisperEncoder.
func getWEOrFail(t *testing.T, ns, name string) *whisperv1.WhisperEncoder {
	t.Helper()
	we, err := getWE(ns, name)
	must(t, err)
	return we
}

// updateWE applies mut to the live WhisperEncoder, retrying on conflicts.
func updateWE(t *testing.T, ns, name string, mut func(*whisperv1.WhisperEncoder)) {
	t.Helper()
	must(t, retryOnConflict(func() error {
		we, err := getWE(ns, name)
		if err != nil {
			return err
		}
		mut(we)
		return k8s.Update(context.Background(), we)
	}))
}

// waitClaimTemplate waits until the Deployment's pods name a template ok accepts ("" for none).
func waitClaimTemplate(t *testing.T, ns, name string, ok func(string) bool) string {
	t.Helper()
	var got string
	eventually(t, 20*time.Second, "the Deployment's claim template", func() error {
		var d appsv1.Deployment
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		got = ""
		if names := claimTemplatesNamed(d.Spec.Template.Spec); len(names) > 0 {
			var err error
			if got, err = claimTemplateOf(&d); err != nil {
				return err
			}
		} else if c := d.Spec.Template.Spec.Containers[0]; len(c.Resources.Claims) > 0 {
			return fmt.Errorf("container claims %+v without a pod claim", c.Resources.Claims)
		}
		if !ok(got) {
			return fmt.Errorf("pods name template %q", got)
		}
		return nil
	})
	return got
}

// waitGone waits until the claim template ns/name is deleted.
func waitGone(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, 20*time.Second, "template "+name+" deleted", func() error {
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &resourcev1.ResourceClaimTemplate{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// TestDRAUnavailable: on an API server that does not serve resource.k8s.io/v1, a WhisperEncoder
// asking for its NPU by DRA says so (Available=False DRAUnavailable naming the API, phase
// Failed) and gets no Deployment instead of pods that could not get their NPU; switched to the
// device plugin, it is served.
func TestDRAUnavailable(t *testing.T) {
	needEnvtest(t)
	withAPIServer(t, "resource.k8s.io/v1=false")
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "dra", allocationDRA(2))
	must(t, k8s.Create(ctx, we))
	finishJob(t, waitJob(t, ns, sourceHash(we)), true, stagedMessage("k-nodra-0123456789ab"))
	got := waitPhase(t, ns, "dra", whisperv1.PhaseFailed)
	c := condition(got, whisperv1.ConditionAvailable)
	if c.Status != metav1.ConditionFalse || c.Reason != whisperv1.ReasonDRAUnavailable || !strings.Contains(c.Message, "resource.k8s.io/v1") {
		t.Errorf("Available %s %s %q, want False DRAUnavailable naming resource.k8s.io/v1", c.Status, c.Reason, c.Message)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dra"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment lookup: %v, want NotFound (no pods without their NPU)", err)
	}
	updateWE(t, ns, "dra", func(we *whisperv1.WhisperEncoder) { we.Spec.NPU.Allocation = whisperv1.NPUAllocationDevicePlugin })
	eventually(t, 20*time.Second, "the Deployment with the device plugin", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dra"}, &appsv1.Deployment{})
	})
}

// withAPIServer runs the rest of t against a second API server (and etcd) started with
// --runtime-config runtimeConfig: the package's restConfig and k8s point at it until t ends.
func withAPIServer(t *testing.T, runtimeConfig string) {
	t.Helper()
	env := &envtest.Environment{
		CRDDirectoryPaths:     testEnv.CRDDirectoryPaths,
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testEnv.BinaryAssetsDirectory,
	}
	env.ControlPlane.GetAPIServer().Configure().Append("runtime-config", runtimeConfig)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start an API server with --runtime-config %s: %v", runtimeConfig, err)
	}
	cfg.QPS, cfg.Burst = restConfig.QPS, restConfig.Burst
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	must(t, err)
	savedConfig, savedClient := restConfig, k8s
	restConfig, k8s = cfg, c
	t.Cleanup(func() {
		restConfig, k8s = savedConfig, savedClient
		if err := env.Stop(); err != nil {
			t.Errorf("stop the second API server: %v", err)
		}
	})
}
