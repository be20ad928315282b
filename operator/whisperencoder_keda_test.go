package operator

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

func kedaConfig() Config {
	c := testConfig()
	c.Autoscaler, c.PrometheusAddress = AutoscalerKEDA, "http://prometheus.monitoring:9090"
	return c
}

// TestEncoderScaledObject: one Prometheus trigger per queue on the sum over the encoder's
// Service, bounds and the scale-down window from spec.autoscaling, the encoder as controller.
func TestEncoderScaledObject(t *testing.T) {
	we := testEncoder(func(we *whisperv1.WhisperEncoder) {
		we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 3, TargetQueueDepth: 2, ScaleDownStabilizationSeconds: ptr.To(int32(15))}
	})
	for _, tt := range []struct {
		name    string
		caps    report.Capabilities
		queries []string
	}{
		{"encode only", report.Capabilities{Encode: true}, []string{`sum(whisper_encoder_queue_depth{namespace="ml",service="base"})`}},
		{"transcribes", report.Capabilities{Encode: true, Transcribe: true}, []string{
			`sum(whisper_encoder_queue_depth{namespace="ml",service="base"})`,
			`sum(whisper_encoder_decode_queue_depth{namespace="ml",service="base"})`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			so, err := encoderScaledObject(we, tt.caps, kedaConfig())
			if err != nil {
				t.Fatal(err)
			}
			if so.GetKind() != "ScaledObject" || so.GetAPIVersion() != "keda.sh/v1alpha1" || so.GetName() != "base" || so.GetNamespace() != "ml" {
				t.Errorf("object %s %s %s/%s, want keda.sh/v1alpha1 ScaledObject ml/base", so.GetAPIVersion(), so.GetKind(), so.GetNamespace(), so.GetName())
			}
			if refs := so.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "uid-1" || !*refs[0].Controller {
				t.Errorf("owner references %+v, want the encoder as controller", refs)
			}
			spec := so.Object["spec"].(map[string]any)
			if spec["minReplicaCount"] != int64(1) || spec["maxReplicaCount"] != int64(3) {
				t.Errorf("replica bounds %v..%v, want 1..3", spec["minReplicaCount"], spec["maxReplicaCount"])
			}
			if diff := cmp.Diff(map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "base"}, spec["scaleTargetRef"]); diff != "" {
				t.Errorf("scaleTargetRef (-want +got):\n%s", diff)
			}
			triggers := spec["triggers"].([]any)
			var queries []string
			for _, tr := range triggers {
				tr := tr.(map[string]any)
				md := tr["metadata"].(map[string]any)
				if tr["type"] != "prometheus" || tr["metricType"] != "AverageValue" || md["threshold"] != "2" ||
					md["serverAddress"] != "http://prometheus.monitoring:9090" {
					t.Errorf("trigger %v, want prometheus AverageValue threshold 2 on the configured server", tr)
				}
				queries = append(queries, md["query"].(string))
			}
			if diff := cmp.Diff(tt.queries, queries); diff != "" {
				t.Errorf("queries (-want +got):\n%s", diff)
			}
			down, _, _ := unstructured.NestedInt64(so.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds")
			up, _, _ := unstructured.NestedInt64(so.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleUp", "stabilizationWindowSeconds")
			if down != 15 || up != 0 {
				t.Errorf("behavior windows: down %d up %d, want 15 and 0", down, up)
			}
			// The object must survive a deep copy (the client and the cache make them): only JSON types.
			_ = so.DeepCopy()
		})
	}
	off := testEncoder()
	if so, err := encoderScaledObject(off, report.Capabilities{Encode: true}, kedaConfig()); so != nil || err != nil {
		t.Errorf("without spec.autoscaling: %v, %v, want nil, nil", so, err)
	}
}

// TestEncoderBehaviorDefaultWindow: an unset window (an object the API server did not default)
// scales down after 300 s, and 0 is kept as "no window".
func TestEncoderBehaviorDefaultWindow(t *testing.T) {
	b := encoderBehavior(&whisperv1.AutoscalingSpec{MaxReplicas: 2})
	if *b.ScaleDown.StabilizationWindowSeconds != 300 || *b.ScaleUp.StabilizationWindowSeconds != 0 {
		t.Errorf("default behavior windows down %d up %d, want 300 and 0", *b.ScaleDown.StabilizationWindowSeconds, *b.ScaleUp.StabilizationWindowSeconds)
	}
	b = encoderBehavior(&whisperv1.AutoscalingSpec{MaxReplicas: 2, ScaleDownStabilizationSeconds: ptr.To(int32(0))})
	if *b.ScaleDown.StabilizationWindowSeconds != 0 {
		t.Errorf("window 0 became %d", *b.ScaleDown.StabilizationWindowSeconds)
	}
}
