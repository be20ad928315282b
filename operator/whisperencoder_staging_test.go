package operator

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

const testURL = "hf://onnx-community/whisper-base/onnx/encoder_model.onnx@main"

func testConfig() Config {
	c := DefaultConfig()
	c.EncoderImage = "registry.test/whisper-encoder:v1"
	return c
}

func testEncoder(mut ...func(*whisperv1.WhisperEncoder)) *whisperv1.WhisperEncoder {
	we := &whisperv1.WhisperEncoder{
		ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: "ml", UID: "uid-1", Generation: 3},
		Spec: whisperv1.WhisperEncoderSpec{
			Model:     whisperv1.ModelSpec{Source: whisperv1.ModelSource{URL: testURL}},
			Precision: whisperv1.PrecisionBF16,
			Backend:   whisperv1.BackendNPU,
			NPU:       whisperv1.NPUSpec{ResourceName: "amd.com/npu", Count: 1},
			Serving:   whisperv1.ServingSpec{MaxBatch: 8, MaxQueue: 64, HTTPPort: 8080, GRPCPort: 9090},
		},
	}
	for _, m := range mut {
		m(we)
	}
	return we
}

func TestSourceHash(t *testing.T) {
	base := sourceHash(testEncoder())
	tests := []struct {
		name string
		mut  func(*whisperv1.WhisperEncoder)
		same bool
	}{
		{"other name and namespace", func(we *whisperv1.WhisperEncoder) { we.Name, we.Namespace = "x", "y" }, true},
		{"credentials do not change the bytes", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Model.CredentialsSecret = &whisperv1.SecretKeyReference{Name: "hf"}
		}, true},
		{"unset precision is bf16", func(we *whisperv1.WhisperEncoder) { we.Spec.Precision = "" }, true},
		{"other revision", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Model.Source.URL = "hf://onnx-community/whisper-base/onnx/encoder_model.onnx@abc"
		}, false},
		{"sha256 pinned", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.SHA256 = "00" }, false},
		{"pvc source", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Model.Source = whisperv1.ModelSource{PVC: &whisperv1.PVCSource{ClaimName: "models", Path: "a.onnx"}}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sourceHash(testEncoder(tt.mut))
			if len(got) != 16 {
				t.Fatalf("sourceHash = %q, want 16 hex digits", got)
			}
			if (got == base) != tt.same {
				t.Errorf("sourceHash = %s, base %s: want same=%v", got, base, tt.same)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	cfg := Config{RetryBaseDelay: 30 * time.Second, RetryMaxDelay: 10 * time.Minute}
	for _, tt := range []struct {
		attempt int32
		want    time.Duration
	}{{1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute}, {5, 8 * time.Minute}, {6, 10 * time.Minute}, {60, 10 * time.Minute}} {
		if got := retryDelay(tt.attempt, cfg); got != tt.want {
			t.Errorf("retryDelay(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

// terminatedPod is a staging pod in phase with the stage container's termination message.
func terminatedPod(name string, phase corev1.PodPhase, exit int32, msg string, finished time.Time) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
			Name: stageContainer,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: exit, Message: msg, FinishedAt: metav1.NewTime(finished),
			}},
		}}},
	}
}

func finishedJob(cond batchv1.JobConditionType, at time.Time, annotations map[string]string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: stagingJobName("h"), UID: "job-uid", Annotations: annotations},
		Status: batchv1.JobStatus{
			StartTime: &metav1.Time{Time: at.Add(-time.Minute)},
			Conditions: []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded",
				Message: "Job has reached the specified backoff limit", LastTransitionTime: metav1.NewTime(at)}},
		},
	}
}

func TestObserveStaging(t *testing.T) {
	cfg := testConfig()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	okMsg := `{"key":"k1","sourceSHA256":"ab","sourcePrecision":"fp32","sizeBytes":10}`
	record := weightsRecord(testEncoder(), "h", report.StageResult{Key: "k1", SourcePrecision: "fp32"})
	running := corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	reporting := *running.DeepCopy()
	reporting.Annotations = map[string]string{report.ProgressAnnotation: `{"phase":"convert","bytesDone":5,"bytesTotal":9}`}
	active := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: stagingJobName("h"), Annotations: map[string]string{annotationTry: "2", annotationSource: testURL}},
		Status: batchv1.JobStatus{StartTime: &metav1.Time{Time: t0}}}
	failed := finishedJob(batchv1.JobFailed, t0, map[string]string{annotationTry: "2", "retry.whisper.xdna.io/uid-1": "a"})
	failedPod := terminatedPod("p1", corev1.PodFailed, 1, `{"error":"download https://x: 404 Not Found"}`, t0)
	tests := []struct {
		name string
		in   stagingInput
		want stagingView
	}{
		{"claim missing", stagingInput{Record: record}, stagingView{State: stagingClaimMissing,
			Message: `PersistentVolumeClaim "whisper-cache" not found in this namespace: the weights cache must be a ReadWriteMany claim of that name (the Helm chart creates it in each watched namespace)`}},
		{"record says staged", stagingInput{ClaimFound: true, Record: record, Job: failed}, stagingView{State: stagingStaged, Result: report.StageResult{Key: "k1", SourcePrecision: "fp32"}}},
		{"nothing yet", stagingInput{ClaimFound: true}, stagingView{State: stagingNoJob, Action: actionCreateJob, Message: "creating staging Job whisper-stage-h"}},
		{"job waits for its pod", stagingInput{ClaimFound: true, Job: active}, stagingView{State: stagingPending, Attempt: 2,
			StartedAt: &metav1.Time{Time: t0}, Message: "staging Job whisper-stage-h (attempt 2) is waiting for its pod to start"}},
		{"job running", stagingInput{ClaimFound: true, Job: active, Pods: []corev1.Pod{running}}, stagingView{State: stagingRunning, Attempt: 2,
			StartedAt: &metav1.Time{Time: t0}, Message: "staging Job whisper-stage-h (attempt 2) is downloading and converting " + testURL}},
		{"job running with progress", stagingInput{ClaimFound: true, Job: active, Pods: []corev1.Pod{reporting}}, stagingView{State: stagingRunning, Attempt: 2,
			StartedAt: &metav1.Time{Time: t0}, Message: "staging Job whisper-stage-h (attempt 2) is downloading and converting " + testURL,
			Phase: "convert", BytesDone: 5, BytesTotal: 9}},
		{"job complete: record it", stagingInput{ClaimFound: true, Job: finishedJob(batchv1.JobComplete, t0, nil),
			Pods: []corev1.Pod{terminatedPod("p", corev1.PodSucceeded, 0, okMsg, t0)}},
			stagingView{State: stagingStaged, Action: actionRecord, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Result: report.StageResult{Key: "k1", SourceSHA256: "ab", SourcePrecision: "fp32", SizeBytes: 10}}},
		{"job complete without result", stagingInput{ClaimFound: true, Job: finishedJob(batchv1.JobComplete, t0, nil), Now: t0},
			stagingView{State: stagingFailed, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "staging Job whisper-stage-h succeeded but left no usable result: the stager left no result",
				RetryAt: &metav1.Time{Time: t0.Add(30 * time.Second)}, RequeueAfter: 30 * time.Second}},
		{"failed: newest pod's message, retry later", stagingInput{ClaimFound: true, Job: failed, Now: t0.Add(10 * time.Second),
			Pods: []corev1.Pod{terminatedPod("p0", corev1.PodFailed, 1, `{"error":"older"}`, t0.Add(-time.Second)), failedPod}},
			stagingView{State: stagingFailed, Attempt: 2, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "download https://x: 404 Not Found", RetryAt: &metav1.Time{Time: t0.Add(time.Minute)}, RequeueAfter: 50 * time.Second}},
		{"failed without pods: the Job's reason", stagingInput{ClaimFound: true, Job: failed, Now: t0},
			stagingView{State: stagingFailed, Attempt: 2, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "staging Job whisper-stage-h failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
				RetryAt: &metav1.Time{Time: t0.Add(time.Minute)}, RequeueAfter: time.Minute}},
		{"failed pod left no message (CodeNoMessage): the Job's reason", stagingInput{ClaimFound: true, Job: failed, Now: t0,
			Pods: []corev1.Pod{terminatedPod("p1", corev1.PodFailed, 137, "", t0)}},
			stagingView{State: stagingFailed, Attempt: 2, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "staging Job whisper-stage-h failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
				RetryAt: &metav1.Time{Time: t0.Add(time.Minute)}, RequeueAfter: time.Minute}},
		{"failed pod's log tail (CodeUnreadable): the text", stagingInput{ClaimFound: true, Job: failed, Now: t0,
			Pods: []corev1.Pod{terminatedPod("p1", corev1.PodFailed, 2, "panic: boom", t0)}},
			stagingView{State: stagingFailed, Attempt: 2, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "panic: boom", RetryAt: &metav1.Time{Time: t0.Add(time.Minute)}, RequeueAfter: time.Minute}},
		{"failed and backoff elapsed: retry", stagingInput{ClaimFound: true, Job: failed, Now: t0.Add(time.Minute), Pods: []corev1.Pod{failedPod}},
			stagingView{State: stagingFailed, Action: actionRetryJob, Attempt: 2, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "download https://x: 404 Not Found", RetryAt: &metav1.Time{Time: t0.Add(time.Minute)}}},
		{"retry annotation bumped: retry now", stagingInput{ClaimFound: true, Job: failed, Now: t0, Pods: []corev1.Pod{failedPod},
			RetryToken: "b", RetryKey: "retry.whisper.xdna.io/uid-1"},
			stagingView{State: stagingFailed, Action: actionRetryJob, Attempt: 2, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "download https://x: 404 Not Found"}},
		{"retry token already honoured: wait", stagingInput{ClaimFound: true, Job: failed, Now: t0, Pods: []corev1.Pod{failedPod},
			RetryToken: "a", RetryKey: "retry.whisper.xdna.io/uid-1"},
			stagingView{State: stagingFailed, Attempt: 2, StartedAt: &metav1.Time{Time: t0.Add(-time.Minute)},
				Message: "download https://x: 404 Not Found", RetryAt: &metav1.Time{Time: t0.Add(time.Minute)}, RequeueAfter: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Hash = "h"
			tt.want.Job = "whisper-stage-h"
			if tt.want.Attempt == 0 {
				tt.want.Attempt = 1
			}
			if diff := cmp.Diff(tt.want, observeStaging(tt.in, cfg)); diff != "" {
				t.Errorf("observeStaging (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStagingJob(t *testing.T) {
	cfg := testConfig()
	restricted := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	labels := map[string]string{labelName: appName, labelComponent: componentStaging, labelManagedBy: managedBy, labelSourceHash: "h"}
	want := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: "whisper-stage-h", Namespace: "ml", Labels: labels,
			Annotations:     map[string]string{annotationSource: testURL, annotationTry: "3", "retry.whisper.xdna.io/uid-1": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "whisper.xdna.io/v1alpha1", Kind: "WhisperEncoder", Name: "base", UID: "uid-1"}},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(int32(2)), ActiveDeadlineSeconds: ptr.To(int64(3600)), TTLSecondsAfterFinished: ptr.To(int32(3600)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{annotationSource: testURL}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: ptr.To(false), EnableServiceLinks: ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To(int64(30)),
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(65532)),
						RunAsGroup: ptr.To(int64(65532)), FSGroup: ptr.To(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Volumes: []corev1.Volume{
						{Name: "cache", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "whisper-cache"}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
					Containers: []corev1.Container{{
						Name: "stage", Image: "registry.test/whisper-encoder:v1", ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{"whisper-encoder"},
						Args: []string{"stage", "--source", testURL, "--cache", "/cache", "--result-file", "/dev/termination-log",
							"--sha256", "ab12"},
						Env: []corev1.EnvVar{{Name: "TMPDIR", Value: "/tmp"}, {Name: "HF_TOKEN", ValueFrom: &corev1.EnvVarSource{
							SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "hf"}, Key: "HF_TOKEN"}}}},
						VolumeMounts:             []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}, {Name: "tmp", MountPath: "/tmp"}},
						TerminationMessagePath:   "/dev/termination-log",
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext:          restricted,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
						},
					}},
				},
			},
		},
	}
	we := testEncoder(func(we *whisperv1.WhisperEncoder) {
		we.Spec.Model.Source.SHA256 = "ab12"
		we.Spec.Model.CredentialsSecret = &whisperv1.SecretKeyReference{Name: "hf"}
	})
	if diff := cmp.Diff(want, stagingJob(we, "h", 3, map[string]string{"retry.whisper.xdna.io/uid-1": "x"}, cfg)); diff != "" {
		t.Errorf("stagingJob (-want +got):\n%s", diff)
	}

	// A pvc source mounts its claim read-only and passes the file under it.
	pvc := testEncoder(func(we *whisperv1.WhisperEncoder) {
		we.Spec.Model.Source = whisperv1.ModelSource{PVC: &whisperv1.PVCSource{ClaimName: "models", Path: "whisper/encoder.onnx"}}
		we.Spec.Image = "own/image:2"
	})
	job := stagingJob(pvc, "h", 1, nil, cfg)
	pod := job.Spec.Template.Spec
	checks := []struct {
		what      string
		got, want any
	}{
		{"args", pod.Containers[0].Args, []string{"stage", "--source", "/source/whisper/encoder.onnx", "--cache", "/cache", "--result-file", "/dev/termination-log"}},
		{"source volume", pod.Volumes[2], corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "models", ReadOnly: true}}}},
		{"source mount", pod.Containers[0].VolumeMounts[2], corev1.VolumeMount{Name: "source", MountPath: "/source", ReadOnly: true}},
		{"image", pod.Containers[0].Image, "own/image:2"},
		{"source annotation", job.Annotations[annotationSource], "pvc://models/whisper/encoder.onnx"},
		{"env", pod.Containers[0].Env, []corev1.EnvVar{{Name: "TMPDIR", Value: "/tmp"}}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("pvc source: %s (-want +got):\n%s", c.what, diff)
		}
	}
}

func TestWeightsRecord(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r := report.StageResult{Key: "k1", Dir: "/cache/k1", SourceSHA256: "ab", SourcePrecision: "fp16", SizeBytes: 7, StagedAt: at}
	cm := weightsRecord(testEncoder(), "h", r)
	want := metav1.ObjectMeta{Name: "whisper-weights-h", Namespace: "ml",
		Labels:      map[string]string{labelName: appName, labelComponent: componentRecord, labelManagedBy: managedBy, labelSourceHash: "h"},
		Annotations: map[string]string{annotationSource: testURL, annotationKey: "k1"}}
	if diff := cmp.Diff(want, cm.ObjectMeta); diff != "" {
		t.Errorf("record metadata (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(r, report.ParseStageResult(cm.Data[recordResultKey])); diff != "" {
		t.Errorf("record does not round-trip the result (-want +got):\n%s", diff)
	}
}

func TestStagingJobWithProgressReporting(t *testing.T) {
	cfg := testConfig()
	cfg.StagerServiceAccount = "whisper-stager"
	pod := stagingJob(testEncoder(), "h", 1, nil, cfg).Spec.Template.Spec
	c := pod.Containers[0]
	checks := []struct {
		what      string
		got, want any
	}{
		{"service account", pod.ServiceAccountName, "whisper-stager"},
		{"token mounted", *pod.AutomountServiceAccountToken, true},
		{"args", c.Args[len(c.Args)-2:], []string{"--report-pod", "$(POD_NAME)"}},
		{"pod name env", c.Env[len(c.Env)-1], corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
	}
	for _, ch := range checks {
		if diff := cmp.Diff(ch.want, ch.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", ch.what, diff)
		}
	}
}
