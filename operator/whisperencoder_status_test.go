package operator

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

func deployment(want, replicas, updated, ready, available int32, observed, gen int64) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: gen},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(want)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated,
			ReadyReplicas: ready, AvailableReplicas: available},
	}
}

func crashingPod(exit int32, msg string) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name:                 encoderContainer,
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: "Error", Message: msg}},
	}}}}
}

// verdict is the part of a status the table checks.
type verdict struct {
	Phase                    whisperv1.Phase
	Staged, Available, Ready string // "Status/Reason"
	Summary                  string
}

func TestComputeStatus(t *testing.T) {
	staged := stagingView{State: stagingStaged, Result: report.StageResult{Key: "k"}}
	unsched := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p2"}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 Insufficient amd.com/npu."}}}}
	tests := []struct {
		name string
		we   *whisperv1.WhisperEncoder
		stg  stagingView
		wl   workloadView
		want verdict
	}{
		{"claim missing", testEncoder(), stagingView{State: stagingClaimMissing},
			workloadView{}, verdict{"Pending", "False/CacheClaimMissing", "False/WaitingForWeights", "False/WaitingForWeights", "0/1"}},
		{"creating the Job", testEncoder(), stagingView{State: stagingNoJob},
			workloadView{}, verdict{"Pending", "False/StagingPending", "False/WaitingForWeights", "False/WaitingForWeights", "0/1"}},
		{"staging", testEncoder(), stagingView{State: stagingRunning},
			workloadView{}, verdict{"Staging", "False/Staging", "False/WaitingForWeights", "False/WaitingForWeights", "0/1"}},
		{"staging failed", testEncoder(), stagingView{State: stagingFailed, Message: "boom"},
			workloadView{}, verdict{"Failed", "False/StagingFailed", "False/WaitingForWeights", "False/StagingFailed", "0/1"}},
		{"staged, pods starting", testEncoder(replicas(2)), staged, workloadView{Deployment: deployment(2, 2, 2, 0, 0, 1, 1)},
			verdict{"Deploying", "True/Staged", "False/ReplicasUnavailable", "False/NotAvailable", "0/2"}},
		{"one of two ready", testEncoder(replicas(2)), staged, workloadView{Deployment: deployment(2, 2, 2, 1, 1, 1, 1)},
			verdict{"Deploying", "True/Staged", "True/MinimumReplicasAvailable", "False/RollingOut", "1/2"}},
		{"all ready", testEncoder(replicas(2)), staged, workloadView{Deployment: deployment(2, 2, 2, 2, 2, 1, 1)},
			verdict{"Ready", "True/Staged", "True/MinimumReplicasAvailable", "True/Ready", "2/2"}},
		{"ready but spec not yet observed", testEncoder(replicas(2)), staged, workloadView{Deployment: deployment(2, 2, 2, 2, 2, 1, 2)},
			verdict{"Deploying", "True/Staged", "True/MinimumReplicasAvailable", "False/RollingOut", "2/2"}},
		{"old pods still around", testEncoder(replicas(2)), staged, workloadView{Deployment: deployment(2, 3, 2, 2, 3, 2, 2)},
			verdict{"Deploying", "True/Staged", "True/MinimumReplicasAvailable", "False/RollingOut", "2/2"}},
		{"scaled to zero", testEncoder(replicas(0)), staged, workloadView{Deployment: deployment(0, 0, 0, 0, 0, 1, 1)},
			verdict{"Deploying", "True/Staged", "False/ScaledToZero", "False/NotAvailable", "0/0"}},
		{"npu missing", testEncoder(), staged, workloadView{Deployment: deployment(1, 1, 1, 0, 0, 1, 1),
			Pods: []corev1.Pod{crashingPod(3, coded(report.CodeNPUUnavailable, "NPU backend is not available in this build"))}},
			verdict{"Failed", "True/Staged", "False/NPUUnavailable", "False/NotAvailable", "0/1"}},
		{"cpu encoder crashing", testEncoder(func(we *whisperv1.WhisperEncoder) { we.Spec.Backend = whisperv1.BackendCPU }), staged,
			workloadView{Deployment: deployment(1, 1, 1, 0, 0, 1, 1), Pods: []corev1.Pod{crashingPod(1, "staged dir /weights: manifest.json: no such file")}},
			verdict{"Failed", "True/Staged", "False/EncoderFailing", "False/NotAvailable", "0/1"}},
		{"image not allowed", testEncoder(), stagingView{State: stagingRefused, Message: "spec.image is not allowed"},
			workloadView{}, verdict{"Failed", "False/ImageNotAllowed", "False/WaitingForWeights", "False/ImageNotAllowed", "0/1"}},
		{"no free NPU", testEncoder(), staged, workloadView{Deployment: deployment(1, 1, 1, 0, 0, 1, 1), Pods: []corev1.Pod{unsched}},
			verdict{"Deploying", "True/Staged", "False/Unschedulable", "False/NotAvailable", "0/1"}},
		{"autoscaled: the Deployment's count", testEncoder(func(we *whisperv1.WhisperEncoder) {
			we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 9}
		}), staged, workloadView{Deployment: deployment(4, 4, 4, 4, 4, 1, 1)},
			verdict{"Ready", "True/Staged", "True/MinimumReplicasAvailable", "True/Ready", "4/4"}},
	}
	now := metav1.NewTime(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := computeStatus(tt.we, tt.stg, tt.wl, now)
			got := verdict{Phase: st.Phase, Summary: st.ReadySummary}
			for _, c := range st.Conditions {
				v := string(c.Status) + "/" + c.Reason
				switch c.Type {
				case whisperv1.ConditionWeightsStaged:
					got.Staged = v
				case whisperv1.ConditionAvailable:
					got.Available = v
				case whisperv1.ConditionReady:
					got.Ready = v
				}
				if c.ObservedGeneration != tt.we.Generation || !c.LastTransitionTime.Equal(&now) {
					t.Errorf("condition %s: observedGeneration %d time %v, want %d and %v", c.Type, c.ObservedGeneration, c.LastTransitionTime, tt.we.Generation, now)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("computeStatus (-want +got):\n%s", diff)
			}
			if st.ObservedGeneration != tt.we.Generation || st.Selector != "app.kubernetes.io/name=whisper-encoder,whisper.xdna.io/encoder=base" {
				t.Errorf("observedGeneration %d selector %q", st.ObservedGeneration, st.Selector)
			}
		})
	}
}

func TestComputeStatusDetails(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	stagedAt := time.Date(2026, 5, 1, 11, 0, 0, 123456789, time.UTC)

	// Conditions keep lastTransitionTime while their status holds.
	we := testEncoder()
	stg := stagingView{State: stagingRunning, Job: "whisper-stage-h", Attempt: 1, StartedAt: &t0, Message: "running"}
	we.Status = computeStatus(we, stg, workloadView{}, t0)
	stg.Message = "still running"
	st := computeStatus(we, stg, workloadView{}, t1)
	if c := st.Conditions[0]; !c.LastTransitionTime.Equal(&t0) || c.Message != "still running" {
		t.Errorf("unchanged WeightsStaged: time %v message %q, want %v and the new message", c.LastTransitionTime, c.Message, t0)
	}
	if diff := cmp.Diff(&whisperv1.StagingStatus{Job: "whisper-stage-h", Attempt: 1, StartedAt: &t0}, st.Staging); diff != "" {
		t.Errorf("status.staging (-want +got):\n%s", diff)
	}

	// Staged: weights from the result (stagedAt at the API's one-second precision), endpoint from the Service.
	res := report.StageResult{Key: "0123456789abcdef0123", SourceSHA256: "ab", SourcePrecision: "fp16", SizeBytes: 41181184, StagedAt: stagedAt}
	svc := encoderService(we)
	st = computeStatus(we, stagingView{State: stagingStaged, Result: res}, workloadView{Deployment: deployment(1, 1, 1, 1, 1, 1, 1), Service: svc}, t1)
	wantW := &whisperv1.WeightsStatus{Key: "0123456789abcdef0123", ShortKey: "0123456789ab", SourceSHA256: "ab", SourcePrecision: "fp16",
		SizeBytes: 41181184, StagedAt: &metav1.Time{Time: stagedAt.Truncate(time.Second)}}
	if diff := cmp.Diff(wantW, st.Weights); diff != "" {
		t.Errorf("status.weights (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&whisperv1.EndpointStatus{Service: "base", Host: "base.ml.svc", HTTPPort: 8080, GRPCPort: 9090}, st.Endpoint); diff != "" {
		t.Errorf("status.endpoint (-want +got):\n%s", diff)
	}
	if st.Staging != nil {
		t.Errorf("status.staging after staging = %+v, want nil", st.Staging)
	}
	// A result without capabilities (an older stager's) encodes only; a whole model's says so.
	if diff := cmp.Diff(&whisperv1.CapabilitiesStatus{Encode: true, Summary: "encode"}, st.Capabilities); diff != "" {
		t.Errorf("status.capabilities of an encoder-only result (-want +got):\n%s", diff)
	}
	res.Capabilities = &report.Capabilities{Encode: true, Transcribe: true, Translate: true, Languages: []string{"en", "de"}}
	st = computeStatus(we, stagingView{State: stagingStaged, Result: res}, workloadView{Deployment: deployment(1, 1, 1, 1, 1, 1, 1), Service: svc}, t1)
	wantC := &whisperv1.CapabilitiesStatus{Encode: true, Transcribe: true, Translate: true, Languages: []string{"en", "de"}, Summary: "encode,transcribe,translate"}
	if diff := cmp.Diff(wantC, st.Capabilities); diff != "" {
		t.Errorf("status.capabilities of a whole model (-want +got):\n%s", diff)
	}
	if st = computeStatus(we, stagingView{State: stagingRunning, Job: "j", Attempt: 1}, workloadView{}, t1); st.Capabilities != nil {
		t.Errorf("status.capabilities before staging = %+v, want nil", st.Capabilities)
	}

	// A failed staging says when it retries.
	retry := metav1.NewTime(t0.Add(90 * time.Second))
	st = computeStatus(we, stagingView{State: stagingFailed, Attempt: 3, Message: "download: 404", RetryAt: &retry}, workloadView{}, t1)
	if c := st.Conditions[0]; !strings.HasPrefix(c.Message, "download: 404 (attempt 3; retried at 12:01:30Z") {
		t.Errorf("failed WeightsStaged message %q, want the stager's message and the retry time", c.Message)
	}
}

// coded is the termination message of an encoder that failed with code and text.
func coded(code report.Code, text string) string {
	return string(report.TerminationFor(report.WithCode(code, errors.New(text))))
}

// TestPodTrouble: the encoder's reason code decides the condition reason, never its text.
func TestPodTrouble(t *testing.T) {
	clean := corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: encoderContainer,
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}}}}
	silent := crashingPod(137, "")
	silent.Status.ContainerStatuses[0].LastTerminationState.Terminated.Reason = "OOMKilled"
	tests := []struct {
		name        string
		pods        []corev1.Pod
		reason, msg string
	}{
		{"nothing wrong", []corev1.Pod{clean}, "", ""},
		{"code NPUUnavailable", []corev1.Pod{crashingPod(3, coded(report.CodeNPUUnavailable, "backend is not available"))},
			whisperv1.ReasonNPUUnavailable, "pod p1: encoder exited: backend is not available"},
		{"code NPUUnavailable, other text", []corev1.Pod{crashingPod(3, coded(report.CodeNPUUnavailable, "no device"))},
			whisperv1.ReasonNPUUnavailable, "pod p1: encoder exited: no device"},
		{"NPU in the text of another code is just a failure", []corev1.Pod{crashingPod(3, coded(report.CodeModelLoadFailed, "NPU weights: bad"))},
			whisperv1.ReasonEncoderFailing, "pod p1: encoder exited: NPU weights: bad"},
		{"plain text mentioning the NPU is just a failure", []corev1.Pod{crashingPod(3, "NPU backend is not available")},
			whisperv1.ReasonEncoderFailing, "pod p1: encoder exited: NPU backend is not available"},
		{"no message", []corev1.Pod{silent}, whisperv1.ReasonEncoderFailing, "pod p1: encoder exited: exit code 137 (OOMKilled) without a termination message"},
		{"long message truncated", []corev1.Pod{crashingPod(1, strings.Repeat("x", 2000))}, whisperv1.ReasonEncoderFailing,
			"pod p1: encoder exited: " + strings.Repeat("x", maxMessage) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, msg := podTrouble(tt.pods)
			if reason != tt.reason || msg != tt.msg {
				t.Errorf("podTrouble = %q, %q; want %q, %q", reason, msg, tt.reason, tt.msg)
			}
		})
	}
}
