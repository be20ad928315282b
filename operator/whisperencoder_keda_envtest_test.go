package operator

import (
	"context"
	"fmt"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// TestKEDAScaledObject runs against KEDA's own ScaledObject CRD (testdata/crds): an operator
// switched from hpa to keda replaces its HPA with a ScaledObject the API server accepts, puts
// back a hand edit of it, makes no writes in steady state, and deletes it with spec.autoscaling.
func TestKEDAScaledObject(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	hpaOp := startOperator(t, ns)
	we := newWE(ns, "auto", func(we *whisperv1.WhisperEncoder) {
		we.Spec.Backend = whisperv1.BackendCPU
		we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MaxReplicas: 3, TargetQueueDepth: 2, ScaleDownStabilizationSeconds: ptr.To(int32(15))}
	})
	stageAndServe(t, we, "kauto")
	var hpa autoscalingv2.HorizontalPodAutoscaler
	eventually(t, 10*time.Second, "HPA", func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(we), &hpa) })
	if b := hpa.Spec.Behavior; b == nil || *b.ScaleDown.StabilizationWindowSeconds != 15 || *b.ScaleUp.StabilizationWindowSeconds != 0 {
		t.Errorf("HPA behavior %+v, want scale-down window 15 s, scale-up 0", b)
	}
	hpaOp.stop()

	op := startOperatorWith(t, func(c *Config) {
		c.RetryBaseDelay, c.RetryMaxDelay = time.Hour, time.Hour
		c.Autoscaler, c.PrometheusAddress = AutoscalerKEDA, "http://prometheus.monitoring:9090"
	}, ns)
	so := newScaledObject()
	eventually(t, 20*time.Second, "ScaledObject, HPA gone", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), so); err != nil {
			return err
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), &hpa); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the operator's HPA is still there (%v)", err)
		}
		return nil
	})
	live, err := getWE(ns, "auto")
	must(t, err)
	if !metav1.IsControlledBy(so, live) {
		t.Errorf("ScaledObject owners %v, want the WhisperEncoder as controller", so.GetOwnerReferences())
	}
	var query string
	triggers, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
	if len(triggers) == 1 {
		query, _, _ = unstructured.NestedString(triggers[0].(map[string]any), "metadata", "query")
	}
	maxCount, _, _ := unstructured.NestedInt64(so.Object, "spec", "maxReplicaCount")
	window, _, _ := unstructured.NestedInt64(so.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds")
	wantQuery := fmt.Sprintf(`sum(whisper_encoder_queue_depth{namespace=%q,service="auto"})`, ns)
	if len(triggers) != 1 || query != wantQuery || maxCount != 3 || window != 15 {
		t.Errorf("ScaledObject spec %v: want one trigger on %s, max 3, scale-down window 15", so.Object["spec"], wantQuery)
	}
	assertSteadyState(t, op, ns, "auto")

	// A hand edit of a field the operator sets is put back.
	eventually(t, 5*time.Second, "edit maxReplicaCount", func() error {
		cur := newScaledObject()
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), cur); err != nil {
			return err
		}
		must(t, unstructured.SetNestedField(cur.Object, int64(9), "spec", "maxReplicaCount"))
		return k8s.Update(ctx, cur)
	})
	eventually(t, 10*time.Second, "maxReplicaCount put back", func() error {
		cur := newScaledObject()
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), cur); err != nil {
			return err
		}
		if n, _, _ := unstructured.NestedInt64(cur.Object, "spec", "maxReplicaCount"); n != 3 {
			return fmt.Errorf("maxReplicaCount %d", n)
		}
		return nil
	})

	// Autoscaling off: the ScaledObject goes.
	eventually(t, 5*time.Second, "autoscaling off", func() error {
		cur, err := getWE(ns, "auto")
		if err != nil {
			return err
		}
		cur.Spec.Autoscaling = nil
		return k8s.Update(ctx, cur)
	})
	eventually(t, 10*time.Second, "ScaledObject deleted", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), newScaledObject()); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ScaledObject still there (%v)", err)
		}
		return nil
	})
}
