package operator

import (
	"context"
	"fmt"
	"strconv"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// scaledObjectGVK is KEDA's ScaledObject. The operator builds it as unstructured so that it
// needs no KEDA Go module; only --autoscaler=keda makes it read or write any.
var scaledObjectGVK = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}

// newScaledObject is an empty ScaledObject to read into.
func newScaledObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(scaledObjectGVK)
	return u
}

// encoderBehavior is the scaling behavior of the encoder's HorizontalPodAutoscaler (the
// operator's or KEDA's): up at once when the queue asks for it (double, or at least 4 pods, per
// 15 s), down only after the queue has asked for fewer pods for the whole stabilization window
// (then to what it asks for at once: the window is the protection against flapping, and encoder
// pods drain their queue on SIGTERM).
func encoderBehavior(a *whisperv1.AutoscalingSpec) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	window := whisperv1.DefaultScaleDownStabilizationSeconds
	if a.ScaleDownStabilizationSeconds != nil {
		window = *a.ScaleDownStabilizationSeconds
	}
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To(int32(0)),
			SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			},
		},
		ScaleDown: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To(window),
			SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			},
		},
	}
}

// queueDepthQuery is the PromQL sum of metric over the encoder's pods: the series Prometheus
// scraped through the encoder's Service, labelled with its namespace and service as the chart's
// ServiceMonitor (and any Kubernetes service discovery relabelled the same way) does.
func queueDepthQuery(metric string, we *whisperv1.WhisperEncoder) string {
	return fmt.Sprintf("sum(%s{namespace=%q,service=%q})", metric, we.Namespace, we.Name)
}

// encoderScaledObject builds the KEDA ScaledObject for spec.autoscaling, or nil without it. KEDA
// makes from it an HPA (keda-hpa-<name>) on external metrics: one Prometheus trigger per queue
// (encode, and decode when the model transcribes), each the queue's sum over the pods with an
// average-per-pod target of targetQueueDepth, so the replica count is ceil(sum / target) of the
// longer queue, clamped to [minReplicas, maxReplicas].
func encoderScaledObject(we *whisperv1.WhisperEncoder, caps report.Capabilities, cfg Config) (*unstructured.Unstructured, error) {
	a := we.Spec.Defaulted().Autoscaling
	if a == nil {
		return nil, nil
	}
	triggers := []any{prometheusTrigger(cfg, queueDepthQuery(cfg.QueueDepthMetric, we), a.TargetQueueDepth)}
	if caps.Transcribe && cfg.DecodeQueueDepthMetric != "" {
		triggers = append(triggers, prometheusTrigger(cfg, queueDepthQuery(cfg.DecodeQueueDepthMetric, we), a.TargetQueueDepth))
	}
	behavior, err := runtime.DefaultUnstructuredConverter.ToUnstructured(encoderBehavior(a))
	if err != nil {
		return nil, fmt.Errorf("ScaledObject %s/%s: behavior: %w", we.Namespace, we.Name, err)
	}
	meta, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ptr.To(controlledMeta(we)))
	if err != nil {
		return nil, fmt.Errorf("ScaledObject %s/%s: metadata: %w", we.Namespace, we.Name, err)
	}
	delete(meta, "creationTimestamp")
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": meta,
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": we.Name},
			"minReplicaCount": int64(a.MinReplicas),
			"maxReplicaCount": int64(a.MaxReplicas),
			"advanced": map[string]any{
				"horizontalPodAutoscalerConfig": map[string]any{"behavior": behavior},
			},
			"triggers": triggers,
		},
	}}
	u.SetGroupVersionKind(scaledObjectGVK)
	return u, nil
}

// prometheusTrigger is a KEDA prometheus trigger on query with an average-per-pod target.
func prometheusTrigger(cfg Config, query string, target int32) map[string]any {
	return map[string]any{
		"type":       "prometheus",
		"metricType": string(autoscalingv2.AverageValueMetricType),
		"metadata": map[string]any{
			"serverAddress": cfg.PrometheusAddress,
			"query":         query,
			"threshold":     strconv.Itoa(int(target)),
			// No series yet (no pod scraped) is an empty queue, not an error.
			"ignoreNullValues": "true",
		},
	}
}

// reconcileAutoscaler applies the configured autoscaler of spec.autoscaling (the operator's HPA
// or KEDA's ScaledObject) and removes the other kind, or removes both when it is unset.
func (r *Reconciler) reconcileAutoscaler(ctx context.Context, we *whisperv1.WhisperEncoder, caps report.Capabilities) error {
	if r.Config.Autoscaler != AutoscalerKEDA {
		if hpa := encoderAutoscaler(we, caps, r.Config); hpa != nil {
			_, err := apply(ctx, r.Client, hpa, nil)
			return err
		}
		return r.deleteAutoscaler(ctx, we)
	}
	so, err := encoderScaledObject(we, caps, r.Config)
	if err != nil {
		return err
	}
	if so == nil {
		return r.deleteScaledObject(ctx, we)
	}
	if _, err := apply(ctx, r.Client, so, nil); err != nil {
		return err
	}
	// KEDA makes its own HorizontalPodAutoscaler; ours (from --autoscaler=hpa before) would fight it.
	return r.deleteAutoscaler(ctx, we)
}

// deleteScaledObject removes the ScaledObject we owned once spec.autoscaling is unset.
func (r *Reconciler) deleteScaledObject(ctx context.Context, we *whisperv1.WhisperEncoder) error {
	so, err := getOptional(ctx, r.Client, we.Namespace, we.Name, newScaledObject())
	if err != nil || so == nil || !metav1.IsControlledBy(so, we) {
		return err
	}
	if err := r.Client.Delete(ctx, so); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ScaledObject %s/%s: %w", so.GetNamespace(), so.GetName(), err)
	}
	return nil
}
