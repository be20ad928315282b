package operator

import (
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

const planted = "PLANTEDsig0123456789abcdef"

// signedURL is a WhisperEncoder source carrying credentials in the query and userinfo.
const signedURL = "https://user:" + planted + "@bucket.s3.test/models/encoder.onnx?X-Amz-Credential=AKIA&X-Amz-Signature=" + planted

// Everything the operator writes about a signed source (Job and pod annotations, the weights
// ConfigMap, the cache metric label, status messages, the stager's message copied into status)
// hides its credentials; only the stager's --source argument carries the URL itself.
func TestSignedSourceNeverStored(t *testing.T) {
	we := testEncoder(func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = signedURL })
	cfg := testConfig()
	hash := sourceHash(we)
	job := stagingJob(we, hash, 1, nil, cfg)
	if got := job.Spec.Template.Spec.Containers[0].Args[2]; got != signedURL {
		t.Fatalf("stager --source = %q, want the URL itself", got)
	}
	job.Spec.Template.Spec.Containers[0].Args[2] = "" // the one place it must be
	record := weightsRecord(we, hash, report.StageResult{Key: "k1"})
	entries := cacheEntries([]corev1.ConfigMap{*record}, []whisperv1.WhisperEncoder{*we})

	// an older stager's failure message and an older operator's annotation, quoting the URL
	failedJob := finishedJob(batchv1.JobFailed, time.Now(), map[string]string{annotationSource: signedURL})
	failedPod := terminatedPod("p1", corev1.PodFailed, 1, `{"error":"download `+signedURL+`: HTTP 403 Forbidden"}`, time.Now())
	failed := observeStaging(stagingInput{ClaimFound: true, Job: failedJob, Pods: []corev1.Pod{failedPod}, Now: time.Now()}, cfg)
	active := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: stagingJobName(hash), Annotations: map[string]string{annotationSource: signedURL}}}
	running := observeStaging(stagingInput{ClaimFound: true, Job: active, Pods: []corev1.Pod{{Status: corev1.PodStatus{Phase: corev1.PodRunning}}}}, cfg)
	st := computeStatus(we, failed, workloadView{}, metav1.Now())
	crash := computeStatus(we, stagingView{State: stagingStaged, Result: report.StageResult{Key: "k"}},
		workloadView{Deployment: deployment(1, 1, 1, 0, 0, 1, 1), Pods: []corev1.Pod{crashingPod(1, "staged from "+signedURL)}}, metav1.Now())

	for what, v := range map[string]any{"Job": job, "record": record, "metrics": entries, "status": st, "running status": running, "crash status": crash} {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), planted) {
			t.Errorf("%s shows the signature:\n%s", what, b)
		}
	}
	want := "https://REDACTED@bucket.s3.test/models/encoder.onnx?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"
	if job.Annotations[annotationSource] != want || job.Spec.Template.Annotations[annotationSource] != want || record.Annotations[annotationSource] != want || entries[0].Source != want {
		t.Errorf("annotations %q, %q, %q, metric %q: want %q", job.Annotations[annotationSource], job.Spec.Template.Annotations[annotationSource],
			record.Annotations[annotationSource], entries[0].Source, want)
	}
	if !strings.Contains(failed.Message, "HTTP 403 Forbidden") {
		t.Errorf("failure message %q lost its substance", failed.Message)
	}
}

func TestImageAllowed(t *testing.T) {
	cfg := testConfig()
	for _, tc := range []struct {
		allow []string
		image string
		ok    bool
	}{
		{nil, "", true},
		{nil, cfg.EncoderImage, true},
		{nil, "evil.test/miner:latest", false},
		{nil, "registry.test/whisper-encoder:v2", false},
		{[]string{"registry.test/whisper-encoder:*"}, "registry.test/whisper-encoder:v2", true},
		{[]string{"registry.test/whisper-encoder:*"}, "registry.test/whisper-encoder-evil:v2", false},
		{[]string{"mirror.test/whisper@sha256:abc"}, "mirror.test/whisper@sha256:abc", true},
		{[]string{"mirror.test/whisper@sha256:abc"}, "mirror.test/whisper@sha256:abd", false},
		{[]string{"*"}, "anything.test/x:y", true},
	} {
		c := cfg
		c.ImageAllowList = tc.allow
		err := c.imageAllowed(tc.image)
		if (err == nil) != tc.ok {
			t.Errorf("allow %v, image %q: %v, want allowed %v", tc.allow, tc.image, err, tc.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), tc.image) || !strings.Contains(err.Error(), cfg.EncoderImage) || !strings.Contains(err.Error(), "--image-allow-list")) {
			t.Errorf("refusal %q: want the image, what is allowed and how to extend it", err)
		}
	}
	for _, bad := range [][]string{{""}, {"a*b*"}, {"*x"}} {
		c := cfg
		c.ImageAllowList = bad
		if err := c.Validate(); err == nil {
			t.Errorf("allow list %q validated", bad)
		}
	}
}

func TestStagerPolicyArgs(t *testing.T) {
	cfg := testConfig()
	if args := stagingJob(testEncoder(), "h", 1, nil, cfg).Spec.Template.Spec.Containers[0].Args; slices.Contains(args, "--allow-hosts") || slices.Contains(args, "--max-download-bytes") {
		t.Errorf("default args %v carry policy flags", args)
	}
	cfg.MaxDownloadBytes, cfg.StagingAllowHosts, cfg.StagingDenyHosts = 1<<30, []string{"mirror.svc", "10.1.0.0/16"}, []string{"10.0.0.0/8"}
	args := strings.Join(stagingJob(testEncoder(), "h", 1, nil, cfg).Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--max-download-bytes 1073741824", "--allow-hosts mirror.svc,10.1.0.0/16", "--deny-hosts 10.0.0.0/8"} {
		if !strings.Contains(args, want) {
			t.Errorf("stager args %q lack %q", args, want)
		}
	}
}

func TestSecureServing(t *testing.T) {
	cfg := testConfig()
	plain := encoderDeployment(testEncoder(), report.StageResult{Key: "k"}, cfg)
	if c := plain.Spec.Template.Spec.Containers[0]; slices.Contains(c.Args, "--tls-cert") || slices.Contains(c.Args, "--auth-token-file") || c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("plain deployment: args %v, probe scheme %s", c.Args, c.ReadinessProbe.HTTPGet.Scheme)
	}
	cfg.TLSSecretName, cfg.AuthTokenSecret, cfg.AuthMetrics = "encoder-tls", "encoder-tokens", true
	d := encoderDeployment(testEncoder(), report.StageResult{Key: "k"}, cfg)
	ps := d.Spec.Template
	c := ps.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--tls-cert /etc/whisper/tls/tls.crt --tls-key /etc/whisper/tls/tls.key", "--auth-token-file /etc/whisper/auth/tokens", "--auth-metrics"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	secrets := map[string]string{}
	for _, v := range ps.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	if secrets["tls"] != "encoder-tls" || secrets["auth"] != "encoder-tokens" {
		t.Errorf("secret volumes %v", secrets)
	}
	for _, m := range c.VolumeMounts {
		if (m.Name == "tls" || m.Name == "auth") && !m.ReadOnly {
			t.Errorf("mount %s is writable", m.Name)
		}
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("probe %s scheme %s, want HTTPS", p.HTTPGet.Path, p.HTTPGet.Scheme)
		}
	}
	if ps.Annotations["prometheus.io/scheme"] != "https" {
		t.Errorf("scrape annotations %v", ps.Annotations)
	}
	bad := testConfig()
	bad.AuthMetrics = true
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "auth token Secret") {
		t.Errorf("auth metrics without tokens: %v", err)
	}
}
