package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/operator"
)

// TestRunAgainstAPIServer runs the whole binary's main path (flags → manager → reconciler →
// probes and metrics) against a real kube-apiserver, until SIGTERM.
func TestRunAgainstAPIServer(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("no KUBEBUILDER_ASSETS: run `make test-operator`")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	var stdout, stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		exit <- run([]string{"--encoder-image", "registry.test/whisper-encoder:v1", "--metrics-bind-address", metricsAddr,
			"--health-probe-bind-address", probeAddr, "--zap-log-level", "error"}, func(string) string { return "" }, &stdout, &stderr)
	}()

	c, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := "run"
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, c.Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "whisper-cache", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}))
	must(t, c.Create(ctx, &whisperv1.WhisperEncoder{
		ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns},
		Spec:       whisperv1.WhisperEncoderSpec{Model: whisperv1.ModelSpec{Source: whisperv1.ModelSource{URL: "https://models.test/encoder_model.onnx"}}},
	}))
	// A cache entry left by a WhisperEncoder deleted earlier (the record format of the operator).
	must(t, c.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "whisper-weights-0123456789abcdef", Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/name": "whisper-encoder", "app.kubernetes.io/component": "weights-record",
				"app.kubernetes.io/managed-by": "whisper-operator", "whisper.xdna.io/source-hash": "0123456789abcdef"},
			Annotations: map[string]string{"whisper.xdna.io/source": "https://models.test/old.onnx"}},
		Data: map[string]string{"result.json": `{"key":"kold","sizeBytes":5}`},
	}))
	waitFor(t, "staging Job and phase Staging", func() error {
		var jobs batchv1.JobList
		if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 1 {
			return fmt.Errorf("jobs %d, %v (stderr %s)", len(jobs.Items), err, stderr.String())
		}
		if img := jobs.Items[0].Spec.Template.Spec.Containers[0].Image; img != "registry.test/whisper-encoder:v1" {
			return fmt.Errorf("job image %q, want the --encoder-image", img)
		}
		var we whisperv1.WhisperEncoder
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "base"}, &we); err != nil || we.Status.Phase != whisperv1.PhaseStaging {
			return fmt.Errorf("phase %q, %v", we.Status.Phase, err)
		}
		return nil
	})
	for _, probe := range []string{"http://" + probeAddr + "/healthz", "http://" + probeAddr + "/readyz"} {
		waitFor(t, probe, func() error { _, err := get(probe); return err })
	}
	waitFor(t, "metrics", func() error {
		body, err := get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{`controller_runtime_reconcile_total{controller="whisperencoder"`,
			`whisper_operator_cache_entries_unreferenced{namespace="run"} 1`,
			`whisper_operator_cache_entry_info{key="kold",namespace="run",referenced="false",source="https://models.test/old.onnx"} 1`} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("no %s in /metrics", want)
			}
		}
		return nil
	})

	must(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after SIGTERM")
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
