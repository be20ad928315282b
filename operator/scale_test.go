package operator

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// TestScale is the scale figure, not a timed test: WHISPER_SCALE_OBJECTS WhisperEncoders over
// WHISPER_SCALE_SOURCES sources reconciled to steady state (all Ready) against the envtest API
// server, while the test plays the Job and Deployment controllers. It prints the time to steady
// state, the operator's API requests per object, one Job per source, and the writes in steady
// state after every object is poked into a reconcile (which must be 0). Run: make bench-operator.
func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("WHISPER_SCALE_OBJECTS"))
	sources, _ := strconv.Atoi(os.Getenv("WHISPER_SCALE_SOURCES"))
	if n <= 0 || sources <= 0 {
		t.Skip("set WHISPER_SCALE_OBJECTS and WHISPER_SCALE_SOURCES (make bench-operator)")
	}
	needEnvtest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := testNamespace(t, true)
	op := startOperator(t, ns)
	go playControllers(ctx, t, ns)

	start := time.Now()
	for i := range n {
		we := newWE(ns, fmt.Sprintf("enc-%03d", i), replicas(int32(1+i%3)))
		we.Spec.Model.Source.URL = fmt.Sprintf("https://models.test/whisper-%02d/encoder_model.onnx", i%sources)
		must(t, k8s.Create(ctx, we))
	}
	created := time.Since(start)
	eventually(t, 10*time.Minute, "all Ready", func() error {
		var list whisperv1.WhisperEncoderList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for i := range list.Items {
			if we := &list.Items[i]; we.Status.Phase == whisperv1.PhaseReady && we.Status.ObservedGeneration == we.Generation {
				ready++
			}
		}
		if ready != n {
			return fmt.Errorf("%d of %d Ready", ready, n)
		}
		return nil
	})
	steady := time.Since(start)
	reqs, verbs := op.requests.snapshot()
	writes, byKind := op.counts.total()
	reconciles := op.counts.reads.Load()
	cancel()

	var jobs batchv1.JobList
	must(t, k8s.List(context.Background(), &jobs, client.InNamespace(ns)))
	if len(jobs.Items) != sources {
		t.Errorf("%d staging Jobs for %d sources, want one per source", len(jobs.Items), sources)
	}

	// Steady state: poke every object (annotation → reconcile) and count writes.
	time.Sleep(time.Second)
	op.counts.reset()
	req0, _ := op.requests.snapshot()
	for i := range n {
		name := fmt.Sprintf("enc-%03d", i)
		must(t, retryOnConflict(func() error {
			we, err := getWE(ns, name)
			if err != nil {
				return err
			}
			we.Annotations = withEntry(we.Annotations, "test.whisper.xdna.io/poke", "1")
			return k8s.Update(context.Background(), we)
		}))
	}
	eventually(t, 2*time.Minute, "every poked object reconciled", func() error {
		if got := op.counts.reads.Load(); got < int64(n) {
			return fmt.Errorf("%d of %d reconciled", got, n)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	steadyWrites, steadyBy := op.counts.total()
	req1, _ := op.requests.snapshot()

	fmt.Printf("SCALE objects=%d sources=%d created_in=%s time_to_steady_state=%s\n", n, sources, created.Round(time.Millisecond), steady.Round(time.Millisecond))
	fmt.Printf("SCALE operator_api_requests=%d per_object=%.2f by_verb=%s reconciles=%d writes=%d writes_per_object=%.2f\n",
		reqs, float64(reqs)/float64(n), sortedCounts(verbs), reconciles, writes, float64(writes)/float64(n))
	fmt.Printf("SCALE operator_writes_by_kind=%s (the rest of the POSTs are events)\n", sortedCounts(byKind))
	fmt.Printf("SCALE staging_jobs=%d steady_state_reconciles=%d steady_state_writes=%d steady_state_api_requests=%d %v\n",
		len(jobs.Items), op.counts.reads.Load(), steadyWrites, req1-req0, steadyBy)
	if steadyWrites != 0 {
		t.Errorf("steady state: %d writes, want 0: %v", steadyWrites, steadyBy)
	}
}

// playControllers finishes every staging Job (as the Job controller would after the stager
// succeeded) and rolls out every Deployment (as the Deployment controller would), until ctx ends.
func playControllers(ctx context.Context, t *testing.T, ns string) {
	for ctx.Err() == nil {
		var jobs batchv1.JobList
		if err := k8s.List(ctx, &jobs, client.InNamespace(ns)); err == nil {
			for i := range jobs.Items {
				j := &jobs.Items[i]
				if jobCondition(j, batchv1.JobComplete) == nil && j.Status.StartTime == nil {
					if err := finishJobErr(ctx, j, true, stagedMessage("k-"+j.Labels[labelSourceHash])); err != nil && ctx.Err() == nil {
						t.Logf("play Job controller: %v", err)
					}
				}
			}
		}
		var deploys appsv1.DeploymentList
		if err := k8s.List(ctx, &deploys, client.InNamespace(ns)); err == nil {
			for i := range deploys.Items {
				d := &deploys.Items[i]
				if !rolledOut(d) {
					if err := rollOutErr(ctx, d); err != nil && ctx.Err() == nil {
						t.Logf("play Deployment controller: %v", err)
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := ""
	for _, k := range keys {
		out += fmt.Sprintf("%s:%d,", k, m[k])
	}
	return "{" + out + "}"
}
