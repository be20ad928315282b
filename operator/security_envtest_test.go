package operator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// TestSignedSourceOnCluster plants a signature in a WhisperEncoder's source URL and greps every
// object the operator writes (and the cache metrics) for it, through a failed staging (an older
// stager's message quoting the URL), a retry and a success: only the stager's --source argument
// may carry it.
func TestSignedSourceOnCluster(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperator(t, ns)
	we := newWE(ns, "signed", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = signedURL })
	must(t, k8s.Create(ctx, we))
	job := waitJob(t, ns, sourceHash(we))
	finishJob(t, job, false, `{"error":"download `+signedURL+`: HTTP 403 Forbidden"}`)
	got := waitPhase(t, ns, "signed", whisperv1.PhaseFailed)
	if c := condition(got, whisperv1.ConditionWeightsStaged); !strings.Contains(c.Message, "X-Amz-Signature=REDACTED") || !strings.Contains(c.Message, "403") {
		t.Errorf("WeightsStaged message %q, want the redacted URL and the failure", c.Message)
	}
	waitEvent(t, ns, "signed", "Failed")
	eventually(t, 5*time.Second, "retry annotation", func() error {
		cur, err := getWE(ns, "signed")
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
	finishJob(t, &next, true, stagedMessage("ksigned"))
	waitPhase(t, ns, "signed", whisperv1.PhaseDeploying)

	var jobs batchv1.JobList
	var pods corev1.PodList
	var cms corev1.ConfigMapList
	var wes whisperv1.WhisperEncoderList
	var events eventsv1.EventList
	for _, l := range []client.ObjectList{&jobs, &pods, &cms, &wes, &events} {
		must(t, k8s.List(ctx, l, client.InNamespace(ns)))
	}
	if len(cms.Items) == 0 || len(pods.Items) == 0 {
		t.Fatalf("%d ConfigMaps, %d pods: want the weights record and the staging pods", len(cms.Items), len(pods.Items))
	}
	// the stager's --source is the one place the operator puts the URL: blank it (and what the
	// operator did not write), then nothing may show it
	for i := range jobs.Items {
		jobs.Items[i].Spec.Template.Spec.Containers[0].Args[2] = ""
	}
	for i := range pods.Items {
		pods.Items[i].Spec.Containers[0].Args[2] = ""
		// the termination message is the (old, unredacting) stager's, played by this test
		for j := range pods.Items[i].Status.ContainerStatuses {
			if term := pods.Items[i].Status.ContainerStatuses[j].State.Terminated; term != nil {
				term.Message = ""
			}
		}
	}
	for i := range wes.Items {
		wes.Items[i].Spec.Model.Source.URL = "" // the user's own input; the status is the operator's
	}
	for what, l := range map[string]any{"Jobs": &jobs, "pods": &pods, "ConfigMaps": &cms, "WhisperEncoders": &wes, "events": &events} {
		b, err := yaml.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), planted) {
			t.Errorf("%s show the signature:\n%s", what, b)
		}
	}
	reader := namespaceReader{ns: ns}
	if n := testutil.CollectAndCount(NewCacheCollector(reader)); n == 0 {
		t.Fatal("cache metrics: no series")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCacheCollector(reader))
	mfs, err := reg.Gather()
	if out := fmt.Sprint(mfs); err != nil || strings.Contains(out, planted) || !strings.Contains(out, "X-Amz-Signature=REDACTED") {
		t.Errorf("cache metrics (%v) show the signature or no source:\n%s", err, out)
	}
}

// TestImageNotAllowedOnCluster: a WhisperEncoder naming an image outside the allow list gets
// nothing (no Job, no Deployment) and a Failed status that says why; an allowed one stages.
func TestImageNotAllowedOnCluster(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperatorWith(t, func(cfg *Config) {
		cfg.RetryBaseDelay, cfg.RetryMaxDelay = time.Hour, time.Hour
		cfg.ImageAllowList = []string{"registry.test/whisper-encoder:*"}
	}, ns)
	bad := newWE(ns, "miner", func(we *whisperv1.WhisperEncoder) { we.Spec.Image = "evil.test/miner:latest" })
	must(t, k8s.Create(ctx, bad))
	got := waitPhase(t, ns, "miner", whisperv1.PhaseFailed)
	for _, ct := range []string{whisperv1.ConditionWeightsStaged, whisperv1.ConditionReady} {
		if c := condition(got, ct); c.Status != metav1.ConditionFalse || c.Reason != whisperv1.ReasonImageNotAllowed || !strings.Contains(c.Message, "evil.test/miner:latest") {
			t.Errorf("%s = %+v, want False/ImageNotAllowed naming the image", ct, c)
		}
	}
	ok := newWE(ns, "pinned", func(we *whisperv1.WhisperEncoder) {
		we.Spec.Image = "registry.test/whisper-encoder:v2"
		we.Spec.Model.Source.URL = "https://models.test/other.onnx"
	})
	must(t, k8s.Create(ctx, ok))
	if j := waitJob(t, ns, sourceHash(ok)); j.Spec.Template.Spec.Containers[0].Image != "registry.test/whisper-encoder:v2" {
		t.Errorf("allowed image: Job runs %s", j.Spec.Template.Spec.Containers[0].Image)
	}
	var jobs batchv1.JobList
	must(t, k8s.List(ctx, &jobs, client.InNamespace(ns)))
	for _, j := range jobs.Items {
		if j.Name == stagingJobName(sourceHash(bad)) {
			t.Errorf("a Job %s exists for the refused image", j.Name)
		}
	}
}

// TestServingSecretMissing: with TLS and bearer tokens configured, a namespace lacking those
// Secrets gets Available=False ServingSecretMissing naming each missing one (the pods could
// only hang in ContainerCreating), and the reason clears as the Secrets appear.
func TestServingSecretMissing(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, true)
	startOperatorWith(t, func(cfg *Config) {
		cfg.RetryBaseDelay, cfg.RetryMaxDelay = time.Hour, time.Hour
		cfg.TLSSecretName, cfg.AuthTokenSecret = "encoder-tls", "encoder-tokens"
	}, ns)
	stageAndServe(t, newWE(ns, "locked"), "klocked")
	waitAvailable := func(reason string, names ...string) {
		t.Helper()
		eventually(t, 20*time.Second, "Available reason "+reason, func() error {
			we, err := getWE(ns, "locked")
			if err != nil {
				return err
			}
			c := condition(we, whisperv1.ConditionAvailable)
			if c.Reason != reason {
				return fmt.Errorf("Available %s %s: %q", c.Status, c.Reason, c.Message)
			}
			for _, n := range []string{"encoder-tls", "encoder-tokens"} {
				if want := slices.Contains(names, n); strings.Contains(c.Message, "Secret "+n+" ") != want {
					return fmt.Errorf("message %q: mentions Secret %s: %v, want %v", c.Message, n, !want, want)
				}
			}
			return nil
		})
	}
	// nudge makes the operator look again, as an encoder pod's status change would.
	nudge := func(v string) {
		t.Helper()
		eventually(t, 5*time.Second, "annotate", func() error {
			we, err := getWE(ns, "locked")
			if err != nil {
				return err
			}
			we.Annotations = withEntry(we.Annotations, "test/nudge", v)
			return k8s.Update(ctx, we)
		})
	}
	waitAvailable(whisperv1.ReasonServingSecretMissing, "encoder-tls", "encoder-tokens")
	if we := waitPhase(t, ns, "locked", whisperv1.PhaseDeploying); we.Status.Phase == whisperv1.PhaseFailed {
		t.Fatal("a missing Secret is not a failure: creating it lets the pods start")
	}
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "encoder-tls"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: []byte("c"), corev1.TLSPrivateKeyKey: []byte("k")}}))
	nudge("1")
	waitAvailable(whisperv1.ReasonServingSecretMissing, "encoder-tokens")
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "encoder-tokens"},
		Data: map[string][]byte{AuthTokensKey: []byte("t0ken")}}))
	nudge("2")
	waitAvailable(whisperv1.ReasonReplicasUnavailable)
}
