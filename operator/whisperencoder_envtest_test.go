package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/encoder/podreport"
)

// newWE is a WhisperEncoder as a user would write it (API defaults fill the rest).
func newWE(ns, name string, mut ...func(*whisperv1.WhisperEncoder)) *whisperv1.WhisperEncoder {
	we := &whisperv1.WhisperEncoder{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: whisperv1.WhisperEncoderSpec{
			Model: whisperv1.ModelSpec{Source: whisperv1.ModelSource{URL: testURL}},
		},
	}
	for _, m := range mut {
		m(we)
	}
	return we
}

func replicas(n int32) func(*whisperv1.WhisperEncoder) {
	return func(we *whisperv1.WhisperEncoder) { we.Spec.Replicas = ptr.To(n) }
}

func backendNPU(we *whisperv1.WhisperEncoder) { we.Spec.Backend = whisperv1.BackendNPU }

// stageAndServe creates we, completes its staging Job with key and waits for its Deployment.
func stageAndServe(t *testing.T, we *whisperv1.WhisperEncoder, key string) *appsv1.Deployment {
	t.Helper()
	must(t, k8s.Create(context.Background(), we))
	finishJob(t, waitJob(t, we.Namespace, sourceHash(we)), true, stagedMessage(key))
	var d appsv1.Deployment
	eventually(t, 20*time.Second, "deployment", func() error {
		return k8s.Get(context.Background(), client.ObjectKeyFromObject(we), &d)
	})
	return &d
}

func condition(we *whisperv1.WhisperEncoder, t string) metav1.Condition {
	if c := meta.FindStatusCondition(we.Status.Conditions, t); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// TestLifecycle: create → staging Job → Job succeeds → Deployment and Service → available →
// Ready, with printer columns, owner references and zero writes in steady state.
func TestLifecycle(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	op := startOperator(t, ns)
	we := newWE(ns, "base", replicas(2), backendNPU)
	must(t, k8s.Create(ctx, we))
	hash := sourceHash(we)

	job := waitJob(t, ns, hash)
	c := job.Spec.Template.Spec.Containers[0]
	checks := []struct {
		what      string
		got, want any
	}{
		{"command", append(c.Command, c.Args...), []string{"whisper-encoder", "stage", "--source", testURL, "--cache", "/cache", "--result-file", "/dev/termination-log"}},
		{"cache mount", c.VolumeMounts[0], corev1.VolumeMount{Name: "cache", MountPath: "/cache"}},
		{"cache claim", job.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName, "whisper-cache"},
		{"memory limit", c.Resources.Limits.Memory().String(), "1Gi"},
		{"backoffLimit", *job.Spec.BackoffLimit, int32(2)},
		{"activeDeadlineSeconds", *job.Spec.ActiveDeadlineSeconds, int64(3600)},
		{"ttlSecondsAfterFinished", *job.Spec.TTLSecondsAfterFinished, int32(3600)},
		{"owners", ownerNames(job), []string{"base"}},
	}
	for _, ch := range checks {
		if diff := cmp.Diff(ch.want, ch.got); diff != "" {
			t.Errorf("staging Job %s (-want +got):\n%s", ch.what, diff)
		}
	}
	got := waitPhase(t, ns, "base", whisperv1.PhaseStaging)
	if c := condition(got, whisperv1.ConditionWeightsStaged); c.Reason != whisperv1.ReasonStagingPending {
		t.Errorf("WeightsStaged while the Job waits for its pod = %+v, want reason %s", c, whisperv1.ReasonStagingPending)
	}
	if got.Status.Staging == nil || got.Status.Staging.Job != job.Name {
		t.Errorf("status.staging = %+v, want job %s", got.Status.Staging, job.Name)
	}

	finishJob(t, job, true, stagedMessage("k-base-0123456789abcdef"))
	got = waitPhase(t, ns, "base", whisperv1.PhaseDeploying)
	wantWeights := &whisperv1.WeightsStatus{Key: "k-base-0123456789abcdef", ShortKey: "k-base-01234", SourceSHA256: fmt.Sprintf("%064d", 7),
		SourcePrecision: "fp32", SizeBytes: 41181184, StagedAt: &metav1.Time{Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}}
	if diff := cmp.Diff(wantWeights, got.Status.Weights); diff != "" {
		t.Errorf("status.weights (-want +got):\n%s", diff)
	}

	var d appsv1.Deployment
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "base"}, &d))
	pod := d.Spec.Template.Spec
	ec := pod.Containers[0]
	npuQty := resource.MustParse("1")
	dchecks := []struct {
		what      string
		got, want any
	}{
		{"replicas", *d.Spec.Replicas, int32(2)},
		{"args", append(ec.Command, ec.Args...), []string{"whisper-encoder", "serve", "--weights", "/weights", "--http-addr", ":8080", "--grpc-addr", ":9090",
			"--backend", "npu", "--max-batch", "8", "--max-queue", "64", "--drain-timeout", "20s"}},
		{"npu request", ptr.To(ec.Resources.Requests[corev1.ResourceName("amd.com/npu")]).String(), npuQty.String()},
		{"npu limit", ptr.To(ec.Resources.Limits[corev1.ResourceName("amd.com/npu")]).String(), npuQty.String()},
		{"default memory for 39.3 MiB of weights", []string{ec.Resources.Requests.Memory().String(), ec.Resources.Limits.Memory().String()}, []string{"296Mi", "1064Mi"}},
		{"IPC_LOCK", ec.SecurityContext.Capabilities, &corev1.Capabilities{Add: []corev1.Capability{"IPC_LOCK"}, Drop: []corev1.Capability{"ALL"}}},
		{"read-only cache mount at the key", ec.VolumeMounts[0], corev1.VolumeMount{Name: "cache", MountPath: "/weights", SubPath: "k-base-0123456789abcdef", ReadOnly: true}},
		{"read-only claim", pod.Volumes[0].PersistentVolumeClaim, &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "whisper-cache", ReadOnly: true}},
		{"readiness", ec.ReadinessProbe.HTTPGet.Path, "/readyz"},
		{"liveness", ec.LivenessProbe.HTTPGet.Path, "/healthz"},
		{"scrape", d.Spec.Template.Annotations["prometheus.io/scrape"], "true"},
		{"controller owner", metav1.GetControllerOf(&d).Name, "base"},
	}
	for _, ch := range dchecks {
		if diff := cmp.Diff(ch.want, ch.got); diff != "" {
			t.Errorf("Deployment %s (-want +got):\n%s", ch.what, diff)
		}
	}
	var svc corev1.Service
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "base"}, &svc))
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s:%d->%s", p.Name, p.Port, p.TargetPort.String()))
	}
	if diff := cmp.Diff([]string{"http:8080->http", "grpc:9090->grpc"}, ports); diff != "" {
		t.Errorf("Service ports (-want +got):\n%s", diff)
	}
	if ref := metav1.GetControllerOf(&svc); ref == nil || ref.UID != got.UID {
		t.Errorf("Service controller = %+v, want the WhisperEncoder %s", ref, got.UID)
	}
	var pdb policyv1.PodDisruptionBudget
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "base"}, &pdb))
	if ref := metav1.GetControllerOf(&pdb); ref == nil || ref.UID != got.UID || pdb.Spec.MaxUnavailable.IntValue() != 1 ||
		!cmp.Equal(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget %+v (controller %+v), want maxUnavailable 1 over the encoder pods, controlled by %s", pdb.Spec, ref, got.UID)
	}

	rollOut(t, ns, "base")
	got = waitPhase(t, ns, "base", whisperv1.PhaseReady)
	for _, ct := range []string{whisperv1.ConditionWeightsStaged, whisperv1.ConditionAvailable, whisperv1.ConditionReady} {
		if c := condition(got, ct); c.Status != metav1.ConditionTrue || c.ObservedGeneration != got.Generation {
			t.Errorf("condition %s = %+v, want True at generation %d", ct, c, got.Generation)
		}
	}
	wantStatus := struct {
		Replicas, Ready int32
		Summary         string
		Selector        string
		Endpoint        *whisperv1.EndpointStatus
	}{2, 2, "2/2", "app.kubernetes.io/name=whisper-encoder,whisper.xdna.io/encoder=base",
		&whisperv1.EndpointStatus{Service: "base", Host: "base." + ns + ".svc", HTTPPort: 8080, GRPCPort: 9090}}
	gotStatus := wantStatus
	gotStatus.Replicas, gotStatus.Ready, gotStatus.Summary, gotStatus.Selector, gotStatus.Endpoint =
		got.Status.Replicas, got.Status.ReadyReplicas, got.Status.ReadySummary, got.Status.Selector, got.Status.Endpoint
	if diff := cmp.Diff(wantStatus, gotStatus); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}

	// kubectl get we: the printer columns, as the API server renders them.
	row := tableRow(t, ns, "base")
	if diff := cmp.Diff([]string{"base", "Ready", "2/2", "npu", "encode", "k-base-01234"}, row[:6]); diff != "" {
		t.Errorf("printer columns (-want +got):\n%s", diff)
	}
	waitEvent(t, ns, "base", "Ready")

	assertSteadyState(t, op, ns, "base")
}

// TestWholeModel: a stager result with capabilities (a whole model) becomes status.capabilities
// and the TASKS column; spec.transcription reaches the pods as serve's --default-* flags, and the
// autoscaler also scales on the decode queue.
func TestWholeModel(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "whole", func(we *whisperv1.WhisperEncoder) {
		we.Spec.Model.Source.URL = "hf://openai/whisper-base@main"
		we.Spec.Backend = whisperv1.BackendCPU
		we.Spec.Transcription = whisperv1.TranscriptionSpec{Language: "de", BeamSize: 5}
		we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MaxReplicas: 3}
	})
	must(t, k8s.Create(ctx, we))
	msg := `{"key":"k-whole-0123456","dir":"/cache/k-whole-0123456","sourceSHA256":"` + strings.Repeat("7", 64) +
		`","sourcePrecision":"float32","sizeBytes":145000000,"stagedAt":"2026-05-01T12:00:00Z",` +
		`"capabilities":{"encode":true,"transcribe":true,"translate":true,"languages":["en","de"]}}`
	finishJob(t, waitJob(t, ns, sourceHash(we)), true, msg)
	var d appsv1.Deployment
	eventually(t, 20*time.Second, "deployment", func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(we), &d) })
	args := d.Spec.Template.Spec.Containers[0].Args
	want := []string{"--default-language", "de", "--default-task", "transcribe", "--default-beam-size", "5", "--default-word-timestamps=false", "--decoder-weights", "bf16"}
	if i := slices.Index(args, "--default-language"); i < 0 || !slices.Equal(args[i:], want) {
		t.Errorf("encoder args %q, want them to end with %q", args, want)
	}
	rollOut(t, ns, "whole")
	got := waitPhase(t, ns, "whole", whisperv1.PhaseReady)
	wantCaps := &whisperv1.CapabilitiesStatus{Encode: true, Transcribe: true, Translate: true, Languages: []string{"en", "de"}, Summary: "encode,transcribe,translate"}
	if diff := cmp.Diff(wantCaps, got.Status.Capabilities); diff != "" {
		t.Errorf("status.capabilities (-want +got):\n%s", diff)
	}
	if row := tableRow(t, ns, "whole"); row[4] != "encode,transcribe,translate" {
		t.Errorf("TASKS column %q", row[4])
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	eventually(t, 20*time.Second, "autoscaler", func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(we), &hpa) })
	var metrics []string
	for _, m := range hpa.Spec.Metrics {
		metrics = append(metrics, m.Pods.Metric.Name)
	}
	if !slices.Equal(metrics, []string{"whisper_encoder_queue_depth", "whisper_encoder_decode_queue_depth"}) {
		t.Errorf("autoscaler metrics %v, want the queue and the decode queue", metrics)
	}
}

// assertSteadyState pokes the WhisperEncoder and its Deployment with changes that trigger
// reconciles but change nothing the operator manages or observes, and requires that no write
// follows.
func assertSteadyState(t *testing.T, op *operatorRun, ns, name string) {
	t.Helper()
	ctx := context.Background()
	time.Sleep(500 * time.Millisecond) // let in-flight reconciles finish
	op.counts.reset()
	for i := 0; i < 3; i++ {
		for _, obj := range []client.Object{&whisperv1.WhisperEncoder{}, &appsv1.Deployment{}} {
			eventually(t, 5*time.Second, "poke", func() error {
				if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
					return err
				}
				if _, ok := obj.(*appsv1.Deployment); ok {
					// A Deployment's annotations count as spec (they bump its generation); labels do not.
					obj.SetLabels(withEntry(obj.GetLabels(), "test.whisper.xdna.io/poke", fmt.Sprint(i)))
				} else {
					obj.SetAnnotations(withEntry(obj.GetAnnotations(), "test.whisper.xdna.io/poke", fmt.Sprint(i)))
				}
				return k8s.Update(ctx, obj)
			})
		}
	}
	eventually(t, 10*time.Second, "reconciles after pokes", func() error {
		if n := op.counts.reads.Load(); n < 3 {
			return fmt.Errorf("%d reconciles", n)
		}
		return nil
	})
	time.Sleep(time.Second)
	if n, by := op.counts.total(); n != 0 {
		t.Errorf("steady state: %d writes after %d reconciles, want 0: %v", n, op.counts.reads.Load(), by)
	}
}

func ownerNames(o metav1.Object) []string {
	var out []string
	for _, r := range o.GetOwnerReferences() {
		out = append(out, r.Name)
	}
	return out
}

// tableRow gets ns/name as a Table, the way kubectl asks, and returns its cells as strings.
func tableRow(t *testing.T, ns, name string) []string {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(restConfig)
	raw, err := cs.RESTClient().Get().AbsPath("/apis/whisper.xdna.io/v1alpha1/namespaces", ns, "whisperencoders", name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	must(t, err)
	var table metav1.Table
	must(t, json.Unmarshal(raw, &table))
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if diff := cmp.Diff([]string{"Name", "Phase", "Ready", "Backend", "Tasks", "Weights", "Age"}, cols); diff != "" {
		t.Errorf("printer column names (-want +got):\n%s", diff)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("table rows = %d, want 1", len(table.Rows))
	}
	var out []string
	for _, c := range table.Rows[0].Cells {
		out = append(out, fmt.Sprint(c))
	}
	return out
}

// waitEvent waits for an events.k8s.io event about ns/name with reason.
func waitEvent(t *testing.T, ns, name, reason string) *eventsv1.Event {
	t.Helper()
	var found *eventsv1.Event
	eventually(t, 10*time.Second, "event "+reason, func() error {
		var list eventsv1.EventList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var seen []string
		for i := range list.Items {
			e := &list.Items[i]
			if e.Regarding.Name == name && e.Reason == reason {
				found = e
				return nil
			}
			seen = append(seen, e.Reason)
		}
		return fmt.Errorf("events seen: %v", seen)
	})
	return found
}

// TestSharedSource: WhisperEncoders with one source share one Job; one created after the Job
// is gone (TTL) is staged from the record without a Job.
func TestSharedSource(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	op := startOperator(t, ns)
	a, b := newWE(ns, "a"), newWE(ns, "b", replicas(3))
	must(t, k8s.Create(ctx, a))
	must(t, k8s.Create(ctx, b))
	hash := sourceHash(a)
	var job batchv1.Job
	eventually(t, 20*time.Second, "Job owned by both", func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: stagingJobName(hash)}, &job); err != nil {
			return err
		}
		if got := ownerNames(&job); len(got) != 2 {
			return fmt.Errorf("owners %v", got)
		}
		return nil
	})
	waitPhase(t, ns, "a", whisperv1.PhaseStaging)
	waitPhase(t, ns, "b", whisperv1.PhaseStaging)
	var jobs batchv1.JobList
	must(t, k8s.List(ctx, &jobs, client.InNamespace(ns)))
	if len(jobs.Items) != 1 {
		t.Fatalf("%d staging Jobs for one source, want 1", len(jobs.Items))
	}
	finishJob(t, &job, true, stagedMessage("kshared"))
	for _, name := range []string{"a", "b"} {
		we := waitPhase(t, ns, name, whisperv1.PhaseDeploying)
		if we.Status.Weights == nil || we.Status.Weights.Key != "kshared" {
			t.Errorf("%s: weights %+v, want key kshared", name, we.Status.Weights)
		}
	}

	// The TTL controller deletes the finished Job; a new user of the source needs none.
	must(t, k8s.Delete(ctx, &job, client.PropagationPolicy(metav1.DeletePropagationBackground)))
	time.Sleep(300 * time.Millisecond)
	op.counts.reset()
	must(t, k8s.Create(ctx, newWE(ns, "c")))
	we := waitPhase(t, ns, "c", whisperv1.PhaseDeploying)
	if we.Status.Weights == nil || we.Status.Weights.Key != "kshared" {
		t.Errorf("c: weights %+v, want key kshared", we.Status.Weights)
	}
	if _, by := op.counts.total(); by["create *v1.Job"] != 0 {
		t.Errorf("a staged source got another Job: writes %v", by)
	}
	must(t, k8s.List(ctx, &jobs, client.InNamespace(ns)))
	if len(jobs.Items) != 0 {
		t.Errorf("%d Jobs after the record exists, want 0", len(jobs.Items))
	}
}

// TestStagingFailure: the stager's error reaches the condition and phase Failed; bumping the
// retry annotation runs the next attempt.
func TestStagingFailure(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "bad")
	must(t, k8s.Create(ctx, we))
	job := waitJob(t, ns, sourceHash(we))
	finishJob(t, job, false, `{"error":"download hf://onnx-community/whisper-base/onnx/encoder_model.onnx@main: 401 Unauthorized (set spec.model.credentialsSecret)"}`)
	got := waitPhase(t, ns, "bad", whisperv1.PhaseFailed)
	c := condition(got, whisperv1.ConditionWeightsStaged)
	if c.Status != metav1.ConditionFalse || c.Reason != whisperv1.ReasonStagingFailed || !strings.Contains(c.Message, "401 Unauthorized") {
		t.Errorf("WeightsStaged = %+v, want False/StagingFailed with the stager's message", c)
	}
	if r := condition(got, whisperv1.ConditionReady); r.Reason != whisperv1.ReasonStagingFailed {
		t.Errorf("Ready = %+v, want reason StagingFailed", r)
	}
	if got.Status.Staging == nil || got.Status.Staging.RetryAt == nil {
		t.Errorf("status.staging = %+v, want a retryAt", got.Status.Staging)
	}
	if e := waitEvent(t, ns, "bad", "Failed"); e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, "401") {
		t.Errorf("Failed event = %s %q, want a Warning with the stager's message", e.Type, e.Note)
	}

	// The user fixes the credentials and asks for a retry.
	eventually(t, 5*time.Second, "retry annotation", func() error {
		cur, err := getWE(ns, "bad")
		if err != nil {
			return err
		}
		cur.Annotations = withEntry(cur.Annotations, whisperv1.AnnotationRetryStaging, "1")
		return k8s.Update(ctx, cur)
	})
	var next batchv1.Job
	eventually(t, 20*time.Second, "second attempt", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), &next); err != nil {
			return err
		}
		if next.UID == job.UID {
			return fmt.Errorf("still the failed Job")
		}
		return nil
	})
	if next.Annotations[annotationTry] != "2" || !hasOwner(&next, got) {
		t.Errorf("retried Job annotations %v owners %v, want attempt 2 owned by bad", next.Annotations, ownerNames(&next))
	}
	got = waitPhase(t, ns, "bad", whisperv1.PhaseStaging)
	if got.Status.Staging.Attempt != 2 {
		t.Errorf("status.staging.attempt = %d, want 2", got.Status.Staging.Attempt)
	}
	finishJob(t, &next, true, stagedMessage("kfixed"))
	waitPhase(t, ns, "bad", whisperv1.PhaseDeploying)
}

// TestValidation: the API server enforces the CRD's schema and CEL rules.
func TestValidation(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, false)
	tests := []struct {
		name string
		mut  func(*whisperv1.WhisperEncoder)
		want string // substring of the rejection; "" accepts
	}{
		{"defaults", func(*whisperv1.WhisperEncoder) {}, ""},
		{"pvc source", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Model.Source = whisperv1.ModelSource{PVC: &whisperv1.PVCSource{ClaimName: "models", Path: "enc/model.onnx"}}
		}, ""},
		{"url and pvc", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Model.Source.PVC = &whisperv1.PVCSource{ClaimName: "models", Path: "a.onnx"}
		}, "exactly one of url or pvc"},
		{"neither url nor pvc", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = "" }, "exactly one of url or pvc"},
		{"ftp url", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = "ftp://x/y.onnx" }, "url must be"},
		{"hf model repository", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = "hf://openai/whisper-base@main" }, ""},
		{"hf model repository without revision", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = "hf://org/repo" }, ""},
		{"hf url without repo", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = "hf://org" }, "url must be"},
		{"transcription defaults", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Transcription = whisperv1.TranscriptionSpec{Language: "de", Task: whisperv1.TaskTranslate, BeamSize: 5, WordTimestamps: true}
		}, ""},
		{"unknown task", func(we *whisperv1.WhisperEncoder) { we.Spec.Transcription.Task = "summarize" }, "Unsupported value"},
		{"language name instead of code", func(we *whisperv1.WhisperEncoder) { we.Spec.Transcription.Language = "German" }, "should match"},
		{"beam too wide", func(we *whisperv1.WhisperEncoder) { we.Spec.Transcription.BeamSize = 17 }, "less than or equal to 16"},
		{"pvc path escapes", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Model.Source = whisperv1.ModelSource{PVC: &whisperv1.PVCSource{ClaimName: "m", Path: "a/../../etc"}}
		}, "must not contain '..'"},
		{"bad sha256", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.SHA256 = "XYZ" }, "sha256"},
		{"min > max", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MinReplicas: 5, MaxReplicas: 2}
		}, "minReplicas must be less than or equal to"},
		{"autoscaling (replicas defaulted and ignored)", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MaxReplicas: 3}
		}, ""},
		{"unknown backend", func(we *whisperv1.WhisperEncoder) { we.Spec.Backend = "gpu" }, "Unsupported value"},
		{"same ports", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Serving = whisperv1.ServingSpec{HTTPPort: 9000, GRPCPort: 9000}
		}, "must differ"},
		{"name too long for a Service", func(we *whisperv1.WhisperEncoder) { we.Name = strings.Repeat("a", 64) }, "DNS-1035"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			we := newWE(ns, fmt.Sprintf("v%d", i), tt.mut)
			err := k8s.Create(ctx, we)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tt.want != "" && (err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("create = %v, want Invalid containing %q", err, tt.want)
			}
		})
	}

	// With autoscaling, spec.replicas (and so /scale) is not a second driver.
	auto := *newWE(ns, "auto", func(we *whisperv1.WhisperEncoder) { we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MaxReplicas: 3} })
	must(t, k8s.Create(ctx, &auto))
	auto.Spec.Replicas = ptr.To(int32(4))
	if err := k8s.Update(ctx, &auto); err == nil || !strings.Contains(err.Error(), "cannot change while spec.autoscaling is set") {
		t.Errorf("changing replicas under autoscaling = %v, want rejected", err)
	}
	scale := &autoscalingv1.Scale{}
	must(t, k8s.SubResource("scale").Get(ctx, &auto, scale))
	scale.Spec.Replicas = 4
	if err := k8s.SubResource("scale").Update(ctx, &auto, client.WithSubResourceBody(scale)); err == nil || !strings.Contains(err.Error(), "cannot change while spec.autoscaling is set") {
		t.Errorf("/scale under autoscaling = %v, want rejected", err)
	}

	// Defaults as the API server applies them.
	var we whisperv1.WhisperEncoder
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "v0"}, &we))
	wantSpec := whisperv1.WhisperEncoderSpec{
		Model: whisperv1.ModelSpec{Source: whisperv1.ModelSource{URL: testURL}}, Precision: "bf16", Backend: "auto",
		Replicas:      ptr.To(int32(1)),
		NPU:           whisperv1.NPUSpec{ResourceName: "amd.com/npu", Count: 1, Allocation: whisperv1.NPUAllocationDevicePlugin, Contexts: 1},
		Transcription: whisperv1.TranscriptionSpec{Task: "transcribe", BeamSize: 1, DecoderWeights: "bf16"},
		Serving:       whisperv1.ServingSpec{MaxBatch: 8, MaxQueue: 64, HTTPPort: 8080, GRPCPort: 9090},
	}
	if diff := cmp.Diff(wantSpec, we.Spec); diff != "" {
		t.Errorf("defaulted spec (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(newWE(ns, "v0").Spec.Defaulted(), we.Spec); diff != "" {
		t.Errorf("the API server's defaults differ from Defaulted() (-Go +API server):\n%s", diff)
	}
	// The defaults inside optional structs (credentialsSecret.key, autoscaling's floor and target).
	full := newWE(ns, "defaults-inside", func(we *whisperv1.WhisperEncoder) {
		we.Spec.Model.CredentialsSecret = &whisperv1.SecretKeyReference{Name: "hf"}
		we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MaxReplicas: 3}
	})
	must(t, k8s.Create(ctx, full.DeepCopy()))
	var gotFull whisperv1.WhisperEncoder
	must(t, k8s.Get(ctx, client.ObjectKeyFromObject(full), &gotFull))
	if diff := cmp.Diff(full.Spec.Defaulted(), gotFull.Spec); diff != "" {
		t.Errorf("the API server's defaults inside optional structs differ from Defaulted() (-Go +API server):\n%s", diff)
	}

	// The source is immutable; other fields are not.
	we.Spec.Model.Source.URL = "https://example.test/other.onnx"
	if err := k8s.Update(ctx, &we); err == nil || !strings.Contains(err.Error(), "spec.model.source is immutable") {
		t.Errorf("changing the source = %v, want rejected as immutable", err)
	}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "v0"}, &we))
	we.Spec.Model.CredentialsSecret = &whisperv1.SecretKeyReference{Name: "hf"}
	we.Spec.Replicas = ptr.To(int32(4))
	must(t, k8s.Update(ctx, &we))
}

// TestScaleSubresource: /scale drives spec.replicas, and the Deployment follows.
func TestScaleSubresource(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "scaled")
	d := stageAndServe(t, we, "kscale")
	if *d.Spec.Replicas != 1 {
		t.Errorf("unset replicas → Deployment replicas %d, want 1", *d.Spec.Replicas)
	}
	rollOut(t, ns, "scaled")
	waitPhase(t, ns, "scaled", whisperv1.PhaseReady)

	scale := &autoscalingv1.Scale{}
	must(t, k8s.SubResource("scale").Get(ctx, we, scale))
	if scale.Status.Selector != "app.kubernetes.io/name=whisper-encoder,whisper.xdna.io/encoder=scaled" || scale.Status.Replicas != 1 {
		t.Errorf("scale status = %+v, want selector of the encoder pods and 1 replica", scale.Status)
	}
	scale.Spec.Replicas = 3
	must(t, k8s.SubResource("scale").Update(ctx, we, client.WithSubResourceBody(scale)))
	eventually(t, 20*time.Second, "Deployment follows /scale", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), d); err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})
	got := waitPhase(t, ns, "scaled", whisperv1.PhaseDeploying)
	if r := condition(got, whisperv1.ConditionReady); r.Reason != whisperv1.ReasonRollingOut {
		t.Errorf("Ready while scaling up = %+v, want RollingOut", r)
	}
	rollOut(t, ns, "scaled")
	if got = waitPhase(t, ns, "scaled", whisperv1.PhaseReady); got.Status.ReadySummary != "3/3" {
		t.Errorf("readySummary = %q, want 3/3", got.Status.ReadySummary)
	}
}

// TestCPUBackendAndAutoscaling: backend cpu requests no device and runs restricted; autoscaling
// creates an HPA that owns the replica count, and removing it deletes the HPA.
func TestCPUBackendAndAutoscaling(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "cpu", func(we *whisperv1.WhisperEncoder) {
		we.Spec.Backend = whisperv1.BackendCPU
		we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 6, TargetQueueDepth: 3}
		we.Spec.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
	})
	d := stageAndServe(t, we, "kcpu")
	c := d.Spec.Template.Spec.Containers[0]
	for name := range c.Resources.Requests {
		if strings.Contains(string(name), "npu") {
			t.Errorf("cpu backend requests %s", name)
		}
	}
	// The CPU request asked for stays; memory gets the defaults for staged weights of 41181184 bytes.
	wantRes := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("296Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1064Mi")},
	}
	if diff := cmp.Diff(wantRes, c.Resources); diff != "" {
		t.Errorf("cpu backend resources (-want +got):\n%s", diff)
	}
	ps, cs := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
	if !*ps.RunAsNonRoot || *ps.RunAsUser != 65532 || !*cs.ReadOnlyRootFilesystem || *cs.AllowPrivilegeEscalation ||
		len(cs.Capabilities.Add) != 0 || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("cpu backend security = pod %+v container %+v, want restricted", ps, cs)
	}
	if !strings.Contains(strings.Join(c.Args, " "), "--backend cpu") {
		t.Errorf("args %v, want --backend cpu", c.Args)
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	eventually(t, 10*time.Second, "HPA", func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(we), &hpa) })
	m := hpa.Spec.Metrics[0]
	if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 6 || hpa.Spec.ScaleTargetRef.Name != "cpu" ||
		m.Pods.Metric.Name != "whisper_encoder_queue_depth" || m.Pods.Target.AverageValue.String() != "3" {
		t.Errorf("HPA spec = %+v, want 2–6 on whisper_encoder_queue_depth averaging 3", hpa.Spec)
	}

	// The HPA scales the Deployment; the operator must not undo it.
	eventually(t, 5*time.Second, "HPA scales", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), d); err != nil {
			return err
		}
		d.Spec.Replicas = ptr.To(int32(5))
		return k8s.Update(ctx, d)
	})
	rollOut(t, ns, "cpu")
	got := waitPhase(t, ns, "cpu", whisperv1.PhaseReady)
	if got.Status.Replicas != 5 || got.Status.ReadySummary != "5/5" {
		t.Errorf("status replicas %d summary %q, want 5 and 5/5", got.Status.Replicas, got.Status.ReadySummary)
	}
	// A spec change that rewrites the Deployment keeps the HPA's count.
	eventually(t, 5*time.Second, "change maxBatch", func() error {
		cur, err := getWE(ns, "cpu")
		if err != nil {
			return err
		}
		cur.Spec.Serving.MaxBatch = 4
		return k8s.Update(ctx, cur)
	})
	eventually(t, 10*time.Second, "Deployment updated, replicas kept", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), d); err != nil {
			return err
		}
		if !strings.Contains(strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "), "--max-batch 4") {
			return fmt.Errorf("args %v", d.Spec.Template.Spec.Containers[0].Args)
		}
		if *d.Spec.Replicas != 5 {
			t.Errorf("rewrite reset the autoscaled replicas to %d, want 5", *d.Spec.Replicas)
		}
		return nil
	})

	// Autoscaling off: the HPA goes, spec.replicas (unset → 1) rules again.
	eventually(t, 5*time.Second, "autoscaling off", func() error {
		cur, err := getWE(ns, "cpu")
		if err != nil {
			return err
		}
		cur.Spec.Autoscaling = nil
		return k8s.Update(ctx, cur)
	})
	eventually(t, 10*time.Second, "HPA deleted", func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(we), &hpa)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("HPA still there: %v", err)
	})
	eventually(t, 10*time.Second, "replicas back to 1", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), d); err != nil {
			return err
		}
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})
}

// TestRestartMidStaging: a new operator process finds the running Job and creates no other.
func TestRestartMidStaging(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	first := startOperator(t, ns)
	we := newWE(ns, "restart")
	must(t, k8s.Create(ctx, we))
	job := waitJob(t, ns, sourceHash(we))
	waitPhase(t, ns, "restart", whisperv1.PhaseStaging)
	first.stop()

	second := startOperator(t, ns)
	eventually(t, 10*time.Second, "second operator reconciles", func() error {
		if second.counts.reads.Load() == 0 {
			return fmt.Errorf("no reconcile yet")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if n, by := second.counts.total(); n != 0 {
		t.Errorf("restarted operator wrote %v mid-staging, want nothing", by)
	}
	var jobs batchv1.JobList
	must(t, k8s.List(ctx, &jobs, client.InNamespace(ns)))
	if len(jobs.Items) != 1 || jobs.Items[0].UID != job.UID {
		t.Fatalf("Jobs after restart: %d (first UID %v), want the original one", len(jobs.Items), job.UID)
	}
	finishJob(t, job, true, stagedMessage("krestart"))
	waitPhase(t, ns, "restart", whisperv1.PhaseDeploying)
}

// TestEncoderFailureSurfaces: the encoder container's termination message (reason code
// NPUUnavailable) becomes Available=False/NPUUnavailable and phase Failed.
func TestEncoderFailureSurfaces(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "npu", backendNPU)
	d := stageAndServe(t, we, "knpu")
	msg := "NPU backend is not available in this build; /dev/accel/accel0: not present"
	termination := string(report.TerminationFor(report.WithCode(report.CodeNPUUnavailable, errors.New(msg))))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "npu-abc", Namespace: ns, Labels: d.Spec.Template.Labels},
		Spec:       *d.Spec.Template.Spec.DeepCopy(),
	}
	must(t, k8s.Create(ctx, pod))
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: encoderContainer, RestartCount: 2,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 3, Reason: "Error", Message: termination, StartedAt: now, FinishedAt: now}},
	}}}
	must(t, k8s.Status().Update(ctx, pod))
	got := waitPhase(t, ns, "npu", whisperv1.PhaseFailed)
	c := condition(got, whisperv1.ConditionAvailable)
	if c.Status != metav1.ConditionFalse || c.Reason != whisperv1.ReasonNPUUnavailable || !strings.Contains(c.Message, msg) {
		t.Errorf("Available = %+v, want False/NPUUnavailable with the encoder's message", c)
	}
}

// TestCacheClaimMissing: without the cache claim nothing is created; the claim appearing starts staging.
func TestCacheClaimMissing(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, false)
	startOperator(t, ns)
	we := newWE(ns, "noclaim")
	must(t, k8s.Create(ctx, we))
	got := waitPhase(t, ns, "noclaim", whisperv1.PhasePending)
	if c := condition(got, whisperv1.ConditionWeightsStaged); c.Reason != whisperv1.ReasonCacheClaimMissing || !strings.Contains(c.Message, `"whisper-cache"`) {
		t.Errorf("WeightsStaged = %+v, want CacheClaimMissing naming the claim", c)
	}
	var jobs batchv1.JobList
	must(t, k8s.List(ctx, &jobs, client.InNamespace(ns)))
	if len(jobs.Items) != 0 {
		t.Errorf("%d Jobs without a cache claim, want 0", len(jobs.Items))
	}
	createClaim(t, ns)
	waitJob(t, ns, sourceHash(we))
	waitPhase(t, ns, "noclaim", whisperv1.PhaseStaging)
}

// TestDeleteLeavesOwnedChildren: deleting a WhisperEncoder needs no finalizer; everything it
// owns carries its owner reference (the garbage collector, absent in envtest, deletes them).
func TestDeleteLeavesOwnedChildren(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "gone", func(we *whisperv1.WhisperEncoder) {
		we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MaxReplicas: 2}
	})
	stageAndServe(t, we, "kgone")
	cur, err := getWE(ns, "gone")
	must(t, err)
	eventually(t, 10*time.Second, "HPA", func() error {
		return k8s.Get(ctx, client.ObjectKeyFromObject(we), &autoscalingv2.HorizontalPodAutoscaler{})
	})
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}} {
		must(t, k8s.Get(ctx, client.ObjectKeyFromObject(we), obj))
		if ref := metav1.GetControllerOf(obj); ref == nil || ref.UID != cur.UID || !*ref.BlockOwnerDeletion {
			t.Errorf("%T controller = %+v, want WhisperEncoder %s", obj, ref, cur.UID)
		}
	}
	var job batchv1.Job
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: stagingJobName(sourceHash(we))}, &job))
	if !hasOwner(&job, cur) {
		t.Errorf("Job owners %v, want gone", ownerNames(&job))
	}
	if len(cur.Finalizers) != 0 {
		t.Errorf("finalizers %v, want none", cur.Finalizers)
	}
	must(t, k8s.Delete(ctx, cur))
	eventually(t, 5*time.Second, "deleted", func() error {
		if _, err := getWE(ns, "gone"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
}

// TestLiveProgress: the stager's reporter (encoder/podreport, the real HTTP client) patches its
// pod on the API server, and the operator shows the counters in status.staging.
func TestLiveProgress(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "progress")
	must(t, k8s.Create(ctx, we))
	job := waitJob(t, ns, sourceHash(we))
	pod, err := createJobPod(ctx, job)
	must(t, err)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning}
	must(t, k8s.Status().Update(ctx, pod))

	httpClient, err := rest.HTTPClientFor(restConfig)
	must(t, err)
	reporter, err := podreport.New(restConfig.Host, ns, pod.Name, "", httpClient, 10*time.Millisecond)
	must(t, err)
	reporter.Report(report.Progress{Phase: "download", BytesDone: 40 << 20, BytesTotal: 82 << 20})
	must(t, reporter.Close())

	eventually(t, 20*time.Second, "progress in status", func() error {
		got, err := getWE(ns, "progress")
		if err != nil {
			return err
		}
		want := &whisperv1.StagingStatus{Job: job.Name, Attempt: 1, Phase: "download", BytesDone: 40 << 20, BytesTotal: 82 << 20}
		if diff := cmp.Diff(want, got.Status.Staging); diff != "" {
			return fmt.Errorf("status.staging (-want +got):\n%s", diff)
		}
		if c := condition(got, whisperv1.ConditionWeightsStaged); c.Reason != whisperv1.ReasonStaging {
			return fmt.Errorf("WeightsStaged reason %s, want Staging", c.Reason)
		}
		return nil
	})
}

// TestSamples: every sample in config/samples is accepted by the API server as written.
func TestSamples(t *testing.T) {
	needEnvtest(t)
	ns := testNamespace(t, false)
	files, err := filepath.Glob(filepath.Join("..", "config", "samples", "*.yaml"))
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no samples in config/samples")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		var we whisperv1.WhisperEncoder
		if err := yaml.UnmarshalStrict(b, &we); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		we.Namespace = ns
		if err := k8s.Create(context.Background(), &we); err != nil {
			t.Errorf("%s: rejected: %v", f, err)
		}
	}
}

// TestDriftIsReverted: hand edits of what the operator sets on its Deployment (replicas, image,
// env), Service (a port), HorizontalPodAutoscaler (its bounds) and weights record (garbage) are
// put back by server-side apply, without touching what others added; afterwards a steady state
// makes no writes.
func TestDriftIsReverted(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	op := startOperator(t, ns)
	we := newWE(ns, "drift", replicas(2), func(we *whisperv1.WhisperEncoder) {
		we.Spec.Backend = whisperv1.BackendCPU
	})
	d := stageAndServe(t, we, "k-drift")
	rollOut(t, ns, "drift")
	waitPhase(t, ns, "drift", whisperv1.PhaseReady)
	want := d.DeepCopy()

	// The Deployment: replicas, image and env edited, a label and an env var of someone else added.
	must(t, retryOnConflict(func() error {
		var live appsv1.Deployment
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), &live); err != nil {
			return err
		}
		live.Spec.Replicas = ptr.To(int32(7))
		c := &live.Spec.Template.Spec.Containers[0]
		c.Image = "registry.test/someone-else:latest"
		c.Env = []corev1.EnvVar{{Name: "TMPDIR", Value: "/var/tmp"}, {Name: "EXTRA", Value: "kept"}}
		live.Labels = withEntry(live.Labels, "team", "ml")
		return k8s.Update(ctx, &live)
	}))
	eventually(t, 20*time.Second, "Deployment put back", func() error {
		var live appsv1.Deployment
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), &live); err != nil {
			return err
		}
		c := live.Spec.Template.Spec.Containers[0]
		switch {
		case *live.Spec.Replicas != 2:
			return fmt.Errorf("replicas %d", *live.Spec.Replicas)
		case c.Image != want.Spec.Template.Spec.Containers[0].Image:
			return fmt.Errorf("image %s", c.Image)
		case !cmp.Equal(c.Env, []corev1.EnvVar{{Name: "TMPDIR", Value: "/tmp"}, {Name: "EXTRA", Value: "kept"}}):
			return fmt.Errorf("env %v, want ours put back and the other one kept", c.Env)
		case live.Labels["team"] != "ml":
			return fmt.Errorf("labels %v: someone else's label is gone", live.Labels)
		}
		return nil
	})

	// The Service: the HTTP port edited.
	must(t, retryOnConflict(func() error {
		var live corev1.Service
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), &live); err != nil {
			return err
		}
		live.Spec.Ports[0].Port = 1234
		return k8s.Update(ctx, &live)
	}))
	eventually(t, 20*time.Second, "Service put back", func() error {
		var live corev1.Service
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), &live); err != nil {
			return err
		}
		var ports []int32
		for _, p := range live.Spec.Ports {
			ports = append(ports, p.Port)
		}
		if !cmp.Equal(ports, []int32{8080, 9090}) {
			return fmt.Errorf("ports %v", ports)
		}
		return nil
	})

	// The weights record: its result edited into garbage (the Job that staged is still there).
	hash := sourceHash(we)
	must(t, retryOnConflict(func() error {
		var cm corev1.ConfigMap
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: recordName(hash)}, &cm); err != nil {
			return err
		}
		cm.Data[recordResultKey] = "garbage"
		return k8s.Update(ctx, &cm)
	}))
	eventually(t, 20*time.Second, "weights record put back", func() error {
		var cm corev1.ConfigMap
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: recordName(hash)}, &cm); err != nil {
			return err
		}
		if r := report.ParseStageResult(cm.Data[recordResultKey]); r.Failed() || r.Key != "k-drift" {
			return fmt.Errorf("record result %q", cm.Data[recordResultKey])
		}
		return nil
	})
	rollOut(t, ns, "drift")
	waitPhase(t, ns, "drift", whisperv1.PhaseReady)
	assertSteadyState(t, op, ns, "drift")

	// The autoscaler: its bounds edited.
	must(t, retryOnConflict(func() error {
		var live whisperv1.WhisperEncoder
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), &live); err != nil {
			return err
		}
		live.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 4, TargetQueueDepth: 2}
		return k8s.Update(ctx, &live)
	}))
	var hpa autoscalingv2.HorizontalPodAutoscaler
	eventually(t, 20*time.Second, "HPA", func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(we), &hpa) })
	hpa.Spec.MaxReplicas, hpa.Spec.MinReplicas = 40, ptr.To(int32(3))
	must(t, k8s.Update(ctx, &hpa))
	eventually(t, 20*time.Second, "HPA put back", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), &hpa); err != nil {
			return err
		}
		if hpa.Spec.MaxReplicas != 4 || *hpa.Spec.MinReplicas != 1 {
			return fmt.Errorf("HPA bounds %d–%d", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		return nil
	})
}

// TestDefaultSampleWithoutNPU: config/samples/whisper_v1alpha1_whisperencoder.yaml as written
// (backend auto) is staged, served by pods that request no NPU and run restricted on the CPU
// backend, and reaches Ready on a cluster where no node has an NPU.
func TestDefaultSampleWithoutNPU(t *testing.T) {
	needEnvtest(t)
	ns := testNamespace(t, true)
	op := startOperator(t, ns)
	b, err := os.ReadFile(filepath.Join("..", "config", "samples", "whisper_v1alpha1_whisperencoder.yaml"))
	must(t, err)
	var we whisperv1.WhisperEncoder
	must(t, yaml.UnmarshalStrict(b, &we))
	we.Namespace = ns
	if we.Spec.Backend != whisperv1.BackendAuto {
		t.Fatalf("the sample's backend is %q, want auto", we.Spec.Backend)
	}
	d := stageAndServe(t, &we, "k-sample")
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	for name := range c.Resources.Requests {
		if strings.Contains(string(name), "npu") {
			t.Errorf("encoder requests %s: an auto encoder must run where no NPU is", name)
		}
	}
	for name := range c.Resources.Limits {
		if strings.Contains(string(name), "npu") {
			t.Errorf("encoder limits %s: an auto encoder must run where no NPU is", name)
		}
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"backend arg", c.Args[7:9], []string{"--backend", "cpu"}},
		{"non-root", *pod.SecurityContext.RunAsNonRoot, true},
		{"capabilities", c.SecurityContext.Capabilities, &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		{"replicas", *d.Spec.Replicas, int32(2)},
	}
	for _, ch := range checks {
		if diff := cmp.Diff(ch.want, ch.got); diff != "" {
			t.Errorf("sample's Deployment %s (-want +got):\n%s", ch.what, diff)
		}
	}
	rollOut(t, ns, we.Name)
	got := waitPhase(t, ns, we.Name, whisperv1.PhaseReady)
	if c := condition(got, whisperv1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v", c)
	}
	assertSteadyState(t, op, ns, we.Name)
}

// TestStagingRetriesWithBackoff: a failed staging is re-run by itself once the backoff passes
// (the source may have become reachable), with the next attempt number.
func TestStagingRetriesWithBackoff(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperatorWith(t, func(cfg *Config) { cfg.RetryBaseDelay, cfg.RetryMaxDelay = 2*time.Second, 4*time.Second }, ns)
	we := newWE(ns, "flaky")
	must(t, k8s.Create(ctx, we))
	job := waitJob(t, ns, sourceHash(we))
	finishJob(t, job, false, `{"error":"download https://models.test/x.onnx: dial tcp: connection refused"}`)
	got := waitPhase(t, ns, "flaky", whisperv1.PhaseFailed)
	if got.Status.Staging == nil || got.Status.Staging.RetryAt == nil {
		t.Fatalf("status.staging = %+v, want a retryAt", got.Status.Staging)
	}
	var next batchv1.Job
	eventually(t, 20*time.Second, "automatic second attempt", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), &next); err != nil {
			return err
		}
		if next.UID == job.UID {
			return fmt.Errorf("still the failed Job")
		}
		return nil
	})
	if next.Annotations[annotationTry] != "2" {
		t.Errorf("retried Job attempt %q, want 2", next.Annotations[annotationTry])
	}
	if retried := next.CreationTimestamp.Sub(got.Status.Staging.RetryAt.Time); retried < -time.Second {
		t.Errorf("retried at %v, before retryAt %v", next.CreationTimestamp, got.Status.Staging.RetryAt)
	}
	finishJob(t, &next, true, stagedMessage("kflaky"))
	waitPhase(t, ns, "flaky", whisperv1.PhaseDeploying)
}

// TestImagePullSecretsOnCluster: the operator's --image-pull-secrets reach the staging Job and
// the encoder Deployment as the API server stores them, a steady state with them still makes no
// writes, and an operator restarted without them takes them off the Deployment.
func TestImagePullSecretsOnCluster(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	secrets := []string{"regcred", "mirror-creds"}
	wantRefs := []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mirror-creds"}}
	op := startOperatorWith(t, func(cfg *Config) {
		cfg.RetryBaseDelay, cfg.RetryMaxDelay = time.Hour, time.Hour
		cfg.ImagePullSecrets = secrets
	}, ns)
	we := newWE(ns, "private")
	must(t, k8s.Create(ctx, we))
	job := waitJob(t, ns, sourceHash(we))
	if diff := cmp.Diff(wantRefs, job.Spec.Template.Spec.ImagePullSecrets); diff != "" {
		t.Errorf("staging Job imagePullSecrets (-want +got):\n%s", diff)
	}
	finishJob(t, job, true, stagedMessage("kprivate"))
	var d appsv1.Deployment
	eventually(t, 20*time.Second, "deployment", func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(we), &d) })
	if diff := cmp.Diff(wantRefs, d.Spec.Template.Spec.ImagePullSecrets); diff != "" {
		t.Errorf("Deployment imagePullSecrets (-want +got):\n%s", diff)
	}
	rollOut(t, ns, "private")
	waitPhase(t, ns, "private", whisperv1.PhaseReady)
	assertSteadyState(t, op, ns, "private")

	op.stop()
	startOperator(t, ns)
	eventually(t, 20*time.Second, "pull secrets removed", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(we), &d); err != nil {
			return err
		}
		if got := d.Spec.Template.Spec.ImagePullSecrets; len(got) != 0 {
			return fmt.Errorf("imagePullSecrets %v after a restart without them", got)
		}
		return nil
	})
}
