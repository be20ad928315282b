package operator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// Status is computed from what was observed by pure functions; it is written once, and only when
// it differs from the stored status.

// computeStatus derives the whole status of we from the staging and serving observations.
// Conditions keep their lastTransitionTime while their status does not change.
func computeStatus(we *whisperv1.WhisperEncoder, stg stagingView, wl workloadView, now metav1.Time) whisperv1.WhisperEncoderStatus {
	old := we.Status
	st := whisperv1.WhisperEncoderStatus{
		ObservedGeneration: we.Generation,
		Conditions:         append([]metav1.Condition(nil), old.Conditions...),
		Selector:           labels.SelectorFromSet(selectorLabels(we)).String(),
	}
	staged := weightsCondition(stg)
	available := availableCondition(we, stg, wl)
	ready := readyCondition(we, staged, available, wl)
	for _, c := range []metav1.Condition{staged, available, ready} {
		c.ObservedGeneration, c.LastTransitionTime = we.Generation, now
		meta.SetStatusCondition(&st.Conditions, c)
	}
	st.Phase = phase(stg, available, ready)
	if stg.State == stagingStaged {
		st.Weights = weightsStatus(stg.Result)
		st.Capabilities = capabilitiesStatus(stg.Result.Caps())
	} else if stg.State != stagingClaimMissing && stg.State != stagingRefused {
		st.Staging = &whisperv1.StagingStatus{
			Job: stg.Job, Attempt: stg.Attempt, Phase: stg.Phase, BytesDone: stg.BytesDone, BytesTotal: stg.BytesTotal,
			StartedAt: stg.StartedAt, RetryAt: stg.RetryAt,
		}
	}
	want := int32(0)
	if r := desiredReplicas(we.Spec); r != nil {
		want = *r
	}
	if d := wl.Deployment; d != nil {
		st.Replicas, st.ReadyReplicas = d.Status.Replicas, d.Status.ReadyReplicas
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
	}
	st.ReadySummary = fmt.Sprintf("%d/%d", st.ReadyReplicas, want)
	if s := wl.Service; s != nil {
		sv := we.Spec.Defaulted().Serving
		st.Endpoint = &whisperv1.EndpointStatus{
			Service: s.Name, Host: s.Name + "." + s.Namespace + ".svc",
			HTTPPort: sv.HTTPPort, GRPCPort: sv.GRPCPort,
		}
	}
	return st
}

// capabilitiesStatus is what the pods can do with weights of capabilities c.
func capabilitiesStatus(c report.Capabilities) *whisperv1.CapabilitiesStatus {
	return &whisperv1.CapabilitiesStatus{
		Encode: c.Encode, Transcribe: c.Transcribe, Translate: c.Translate,
		Languages: slices.Clone(c.Languages), Summary: strings.Join(c.Tasks(), ","),
	}
}

func weightsStatus(r report.StageResult) *whisperv1.WeightsStatus {
	w := &whisperv1.WeightsStatus{
		Key: r.Key, ShortKey: r.Key, SourceSHA256: r.SourceSHA256,
		SourcePrecision: r.SourcePrecision, SizeBytes: r.SizeBytes,
	}
	if len(w.ShortKey) > 12 {
		w.ShortKey = w.ShortKey[:12]
	}
	if !r.StagedAt.IsZero() {
		w.StagedAt = &metav1.Time{Time: r.StagedAt.UTC().Truncate(time.Second)} // the API stores seconds
	}
	return w
}

// weightsCondition is WeightsStaged from the staging verdict.
func weightsCondition(stg stagingView) metav1.Condition {
	c := metav1.Condition{Type: whisperv1.ConditionWeightsStaged, Status: metav1.ConditionFalse, Message: stg.Message}
	switch stg.State {
	case stagingStaged:
		c.Status, c.Reason = metav1.ConditionTrue, whisperv1.ReasonStaged
		c.Message = fmt.Sprintf("weights %s (from %s source) are in the cache", stg.Result.Key, orUnknown(stg.Result.SourcePrecision))
	case stagingClaimMissing:
		c.Reason = whisperv1.ReasonCacheClaimMissing
	case stagingRefused:
		c.Reason = whisperv1.ReasonImageNotAllowed
	case stagingFailed:
		c.Reason = whisperv1.ReasonStagingFailed
		if stg.RetryAt != nil {
			c.Message += fmt.Sprintf(" (attempt %d; retried at %s, or at once when annotation %s changes)",
				stg.Attempt, stg.RetryAt.UTC().Format("15:04:05Z"), whisperv1.AnnotationRetryStaging)
		}
	case stagingRunning:
		c.Reason = whisperv1.ReasonStaging
	default:
		c.Reason = whisperv1.ReasonStagingPending
	}
	return c
}

// availableCondition is Available: at least one encoder replica is ready.
func availableCondition(we *whisperv1.WhisperEncoder, stg stagingView, wl workloadView) metav1.Condition {
	c := metav1.Condition{Type: whisperv1.ConditionAvailable, Status: metav1.ConditionFalse}
	d := wl.Deployment
	switch {
	case stg.State == stagingStaged && wl.DRAUnavailable != "":
		c.Reason, c.Message = whisperv1.ReasonDRAUnavailable, wl.DRAUnavailable
	case stg.State != stagingStaged || d == nil:
		c.Reason, c.Message = whisperv1.ReasonWaitingForWeights, "encoder pods start once the weights are staged"
	case d.Status.AvailableReplicas > 0:
		c.Status, c.Reason = metav1.ConditionTrue, whisperv1.ReasonMinimumReplicasAvailable
		c.Message = fmt.Sprintf("%d of %d replicas available", d.Status.AvailableReplicas, replicasOf(d))
	case replicasOf(d) == 0:
		c.Reason, c.Message = whisperv1.ReasonScaledToZero, "scaled to zero replicas"
	case len(wl.MissingSecrets) > 0:
		c.Reason = whisperv1.ReasonServingSecretMissing
		c.Message = fmt.Sprintf("encoder pods cannot start: namespace %s has no %s", we.Namespace, strings.Join(wl.MissingSecrets, ", no "))
	default:
		c.Reason, c.Message = podTrouble(wl.Pods)
		if c.Reason == "" {
			c.Reason = whisperv1.ReasonReplicasUnavailable
			c.Message = fmt.Sprintf("0 of %d replicas available", replicasOf(d))
		}
	}
	return c
}

// podTrouble explains why no encoder pod is available: the encoder's own termination message
// (NPUUnavailable when its reason code says so, EncoderFailing otherwise) or the scheduler's
// reason. It returns "" when no pod shows a problem yet.
func podTrouble(pods []corev1.Pod) (reason, message string) {
	var unschedulable string
	for i := range pods {
		p := &pods[i]
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != encoderContainer {
				continue
			}
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 {
				t = cs.LastTerminationState.Terminated
			}
			if t == nil || t.ExitCode == 0 {
				continue
			}
			term := report.ParseTermination(t.Message)
			msg := truncate(redact.Text(term.Message), maxMessage)
			if term.Reason == report.CodeNoMessage {
				msg = fmt.Sprintf("exit code %d (%s) without a termination message", t.ExitCode, t.Reason)
			}
			msg = fmt.Sprintf("pod %s: encoder exited: %s", p.Name, msg)
			if term.Reason == report.CodeNPUUnavailable {
				return whisperv1.ReasonNPUUnavailable, msg
			}
			return whisperv1.ReasonEncoderFailing, msg
		}
		for _, pc := range p.Status.Conditions {
			if pc.Type == corev1.PodScheduled && pc.Status == corev1.ConditionFalse && pc.Reason == corev1.PodReasonUnschedulable && unschedulable == "" {
				unschedulable = fmt.Sprintf("pod %s: %s", p.Name, truncate(pc.Message, maxMessage))
			}
		}
	}
	if unschedulable != "" {
		return whisperv1.ReasonUnschedulable, unschedulable
	}
	return "", ""
}

// readyCondition is Ready: staged, available, and the rollout to the desired replicas is complete.
func readyCondition(we *whisperv1.WhisperEncoder, staged, available metav1.Condition, wl workloadView) metav1.Condition {
	c := metav1.Condition{Type: whisperv1.ConditionReady, Status: metav1.ConditionFalse}
	d := wl.Deployment
	switch {
	case staged.Status != metav1.ConditionTrue:
		c.Reason, c.Message = whisperv1.ReasonWaitingForWeights, staged.Message
		if staged.Reason == whisperv1.ReasonStagingFailed || refusedReason(staged.Reason) {
			c.Reason = staged.Reason
		}
	case available.Status != metav1.ConditionTrue:
		c.Reason, c.Message = whisperv1.ReasonNotAvailable, available.Message
	case !rolledOut(d):
		c.Reason = whisperv1.ReasonRollingOut
		c.Message = fmt.Sprintf("%d of %d replicas updated and ready", min(d.Status.UpdatedReplicas, d.Status.ReadyReplicas), replicasOf(d))
	default:
		c.Status, c.Reason = metav1.ConditionTrue, whisperv1.ReasonReady
		c.Message = fmt.Sprintf("%d of %d replicas ready", d.Status.ReadyReplicas, replicasOf(d))
	}
	return c
}

// rolledOut reports whether the Deployment controller has observed the current spec and every
// desired replica runs it and is ready, with no old replica left.
func rolledOut(d *appsv1.Deployment) bool {
	want := replicasOf(d)
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.ReadyReplicas == want && s.Replicas == want
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// phase summarizes staging and the conditions.
func phase(stg stagingView, available, ready metav1.Condition) whisperv1.Phase {
	switch stg.State {
	case stagingClaimMissing, stagingNoJob:
		return whisperv1.PhasePending
	case stagingFailed, stagingRefused:
		return whisperv1.PhaseFailed
	case stagingPending, stagingRunning:
		return whisperv1.PhaseStaging
	}
	switch {
	case ready.Status == metav1.ConditionTrue:
		return whisperv1.PhaseReady
	case available.Status != metav1.ConditionTrue &&
		(available.Reason == whisperv1.ReasonNPUUnavailable || available.Reason == whisperv1.ReasonEncoderFailing ||
			available.Reason == whisperv1.ReasonDRAUnavailable):
		return whisperv1.PhaseFailed
	}
	return whisperv1.PhaseDeploying
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown-precision"
	}
	return s
}

// writeStatus stores st when it differs from the stored status (one write, or none), and records
// an event when the phase changes.
func (r *Reconciler) writeStatus(ctx context.Context, we *whisperv1.WhisperEncoder, st whisperv1.WhisperEncoderStatus) error {
	if equality.Semantic.DeepEqual(we.Status, st) {
		return nil
	}
	oldPhase := we.Status.Phase
	we.Status = st
	if err := r.Client.Status().Update(ctx, we); err != nil {
		return fmt.Errorf("update status of %s/%s: %w", we.Namespace, we.Name, err)
	}
	if st.Phase != oldPhase {
		r.phaseEvent(we, st)
	}
	return nil
}

// phaseEvent tells what the new phase means, with the message of the condition that decided it.
func (r *Reconciler) phaseEvent(we *whisperv1.WhisperEncoder, st whisperv1.WhisperEncoderStatus) {
	if r.Recorder == nil {
		return
	}
	cond := whisperv1.ConditionReady
	switch st.Phase {
	case whisperv1.PhasePending, whisperv1.PhaseStaging:
		cond = whisperv1.ConditionWeightsStaged
	case whisperv1.PhaseFailed:
		if c := meta.FindStatusCondition(st.Conditions, whisperv1.ConditionWeightsStaged); c != nil && c.Status != metav1.ConditionTrue {
			cond = whisperv1.ConditionWeightsStaged
		} else {
			cond = whisperv1.ConditionAvailable
		}
	case whisperv1.PhaseDeploying:
		cond = whisperv1.ConditionAvailable
	}
	note := ""
	if c := meta.FindStatusCondition(st.Conditions, cond); c != nil {
		note = c.Message
	}
	kind := corev1.EventTypeNormal
	if st.Phase == whisperv1.PhaseFailed {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(we, nil, kind, string(st.Phase), "Phase", "%s", truncate(note, maxMessage))
}
