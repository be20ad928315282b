package chart

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/operator"
)

// operatorBinary builds cmd/whisper-operator once per test binary.
func operatorBinary(t *testing.T) string { return goBuild(t, "./cmd/whisper-operator") }

// TestOperatorFlagsAccepted runs the real whisper-operator with the arguments every
// rendering gives it (plus --version, which exits after parsing): unknown flags or bad
// values fail here rather than in a crash-looping pod.
func TestOperatorFlagsAccepted(t *testing.T) {
	needEnv(t)
	bin := operatorBinary(t)
	eachOperatorDeployment(t, func(t *testing.T, _ *rendering, dep *appsv1.Deployment) {
		c := dep.Spec.Template.Spec.Containers[0]
		out, err := exec.Command(bin, append(c.Args, "--version")...).CombinedOutput()
		if err != nil {
			t.Fatalf("whisper-operator %q: %v\n%s", c.Args, err, out)
		}
	})
}

// TestEncoderPullSecretsReachTheOperator: encoder.imagePullSecrets becomes the operator's
// --image-pull-secrets, in order, and no flag at all when the list is empty (so renderings
// without it are what they were before the value existed).
func TestEncoderPullSecretsReachTheOperator(t *testing.T) {
	needEnv(t)
	eachOperatorDeployment(t, func(t *testing.T, r *rendering, dep *appsv1.Deployment) {
		var got []string
		for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
			if v, ok := strings.CutPrefix(a, "--image-pull-secrets="); ok {
				got = append(got, v)
			}
		}
		var want []string
		if names := r.encoderPullSecrets(); len(names) > 0 {
			want = []string{strings.Join(names, ",")}
		}
		if !slices.Equal(got, want) {
			t.Errorf("--image-pull-secrets values %q, want %q (encoder.imagePullSecrets)", got, want)
		}
	})
}

// eachOperatorDeployment runs check, as a subtest, on the operator Deployment of every values
// case that renders one.
func eachOperatorDeployment(t *testing.T, check func(t *testing.T, r *rendering, dep *appsv1.Deployment)) {
	t.Helper()
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			if dep := operatorDeployment(t, r); dep != nil {
				check(t, r, dep)
			}
		})
	}
}

// encoderPullSecrets is encoder.imagePullSecrets of the case's values.
func (r *rendering) encoderPullSecrets() []string {
	var names []string
	l, _ := r.value("encoder.imagePullSecrets", nil).([]any)
	for _, v := range l {
		names = append(names, v.(string))
	}
	return names
}

// operatorDeployment returns the rendered operator Deployment, or nil when disabled.
func operatorDeployment(t *testing.T, r *rendering) *appsv1.Deployment {
	t.Helper()
	for _, o := range r.ofKind("Deployment") {
		if strings.HasSuffix(o.GetName(), "-operator") {
			var d appsv1.Deployment
			fromUnstructured(t, o, &d)
			return &d
		}
	}
	if r.value("operator.enabled", true) != false {
		t.Fatalf("rendering %s has no operator Deployment", r.name)
	}
	return nil
}

// TestOperatorRunsWithChartRBAC installs a rendering for real and runs the whisper-operator
// binary with the rendered arguments and environment, authenticated as the chart's operator
// ServiceAccount — so it has exactly the chart's RBAC. It must stage a WhisperEncoder (a
// Job in the encoder's namespace, status written), hold its leader Lease, and report ready.
// With live progress, the stager's ServiceAccount may patch pods in its namespace only.
func TestOperatorRunsWithChartRBAC(t *testing.T) {
	needEnv(t)
	tests := []struct {
		name, values string
		inline       string // values YAML, instead of a file
		outside      bool   // also a WhisperEncoder outside namespaces.workload (cluster-wide watch)
	}{
		// The defaults: operator and WhisperEncoders in the release namespace.
		{name: "namespaced"},
		// The usual production layout: the operator in its own namespace, encoders in two others.
		{name: "namespaced-separate", inline: "namespaces: {workload: [speech-x, speech-y]}\nstager: {liveProgress: true}\n"},
		{name: "all-namespaces", values: filepath.Join(ciValues, "all-namespaces-values.yaml"), outside: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vc := valuesCase{name: "install-" + tt.name, file: tt.values, namespace: "install-" + tt.name}
			if tt.inline != "" {
				vc.file = filepath.Join(t.TempDir(), "values.yaml")
				must(t, os.WriteFile(vc.file, []byte(tt.inline), 0o644))
			}
			r := render(t, vc)
			admin := newAPIClient(t, restConfig)
			k8s, err := client.New(restConfig, client.Options{Scheme: clientScheme(t)})
			if err != nil {
				t.Fatal(err)
			}
			install(t, admin, k8s, r)

			dep := operatorDeployment(t, r)
			sa := dep.Spec.Template.Spec.ServiceAccountName
			kubeconfig := serviceAccountKubeconfig(t, r.namespace, sa)
			probe := freeAddr(t)
			c := dep.Spec.Template.Spec.Containers[0]
			args := append(append([]string{}, c.Args...), "--metrics-bind-address=0", "--health-probe-bind-address="+probe)
			proc, logs := startOperator(t, args, kubeconfig, r.namespace)
			defer stopOperator(t, proc, logs)

			encoderNS := r.workloadNamespaces()
			if tt.outside {
				extra := "install-outside"
				ensureNamespace(t, admin, extra, privileged)
				createClaim(t, k8s, extra, "whisper-cache")
				encoderNS = append(encoderNS, extra)
			}
			wantImage := encoderImage(t, c.Args)
			for _, ns := range encoderNS {
				must(t, k8s.Create(bg(), &whisperv1.WhisperEncoder{
					ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns},
					Spec:       whisperv1.WhisperEncoderSpec{Model: whisperv1.ModelSpec{Source: whisperv1.ModelSource{URL: "https://models.test/encoder_model.onnx"}}},
				}))
			}
			stagerSA, _ := r.value("stager.serviceAccountName", "whisper-stager").(string)
			liveProgress, _ := r.value("stager.liveProgress", false).(bool)
			for _, ns := range encoderNS {
				waitFor(t, "staging Job and phase Staging in "+ns, func() error {
					var jobs batchv1.JobList
					if err := k8s.List(bg(), &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 1 {
						return fmt.Errorf("%d jobs, %v; operator log:\n%s", len(jobs.Items), err, logs.tail())
					}
					spec := jobs.Items[0].Spec.Template.Spec
					if img := spec.Containers[0].Image; img != wantImage {
						return fmt.Errorf("job image %q, want %q", img, wantImage)
					}
					if wantSA := map[bool]string{true: stagerSA, false: ""}[liveProgress]; spec.ServiceAccountName != wantSA {
						return fmt.Errorf("staging pod ServiceAccount %q, want %q", spec.ServiceAccountName, wantSA)
					}
					var secrets []string
					for _, ref := range spec.ImagePullSecrets {
						secrets = append(secrets, ref.Name)
					}
					if want := r.encoderPullSecrets(); !slices.Equal(secrets, want) {
						return fmt.Errorf("staging pod imagePullSecrets %q, want %q (encoder.imagePullSecrets)", secrets, want)
					}
					var we whisperv1.WhisperEncoder
					if err := k8s.Get(bg(), types.NamespacedName{Namespace: ns, Name: "base"}, &we); err != nil || we.Status.Phase != whisperv1.PhaseStaging {
						return fmt.Errorf("phase %q, %v", we.Status.Phase, err)
					}
					return nil
				})
			}
			waitFor(t, "/readyz", func() error { return httpOK("http://" + probe + "/readyz") })
			if r.value("operator.leaderElection.enabled", true) != false {
				waitFor(t, "leader Lease", func() error {
					var l coordinationv1.Lease
					if err := k8s.Get(bg(), types.NamespacedName{Namespace: r.namespace, Name: operator.LeaderElectionID}, &l); err != nil {
						return err
					}
					if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
						return fmt.Errorf("lease has no holder")
					}
					return nil
				})
			}
			if liveProgress {
				checkStagerRBAC(t, k8s, r.workloadNamespaces(), stagerSA)
			}
			if logs.contains("is forbidden") {
				t.Errorf("the operator was refused something it asked for:\n%s", logs.tail())
			}
		})
	}
}

// install creates every object of r for real, in the order helm uses for these kinds
// (Namespaces and CRDs first), and waits for the CRD to be established.
func install(t *testing.T, admin *apiClient, k8s client.Client, r *rendering) {
	t.Helper()
	ensureNamespace(t, admin, r.namespace, privileged)
	first := map[string]bool{"Namespace": true, "CustomResourceDefinition": true}
	for _, o := range r.objects {
		if first[o.GetKind()] {
			if err := admin.apply(o, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ns := range r.workloadNamespaces() {
		ensureNamespace(t, admin, ns, privileged)
	}
	waitFor(t, "WhisperEncoder CRD established", func() error {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8s.Get(bg(), types.NamespacedName{Name: "whisperencoders.whisper.xdna.io"}, &crd); err != nil {
			return err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not established")
	})
	for _, o := range r.objects {
		if !first[o.GetKind()] {
			if err := admin.apply(o, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r.value("cache.create", true) == false {
		for _, ns := range r.workloadNamespaces() {
			createClaim(t, k8s, ns, r.value("cache.claimName", "whisper-cache").(string))
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig whose client certificate authenticates as the
// ServiceAccount ns/name (user system:serviceaccount:ns:name and its groups), which is what
// RBAC bindings to that ServiceAccount match.
func serviceAccountKubeconfig(t *testing.T, ns, name string) string {
	t.Helper()
	user, err := testEnv.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}, restConfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// logBuffer collects a process's output safely.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(strings.ToLower(b.buf.String()), s)
}

// tail is the last 4 KiB of output.
func (b *logBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4096 {
		s = "…" + s[len(s)-4096:]
	}
	return s
}

// startOperator runs the operator binary with args as the pod would (POD_NAMESPACE from the
// downward API) against kubeconfig.
func startOperator(t *testing.T, args []string, kubeconfig, ns string) (*exec.Cmd, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cmd := exec.Command(operatorBinary(t), args...)
	cmd.Env = []string{"KUBECONFIG=" + kubeconfig, "POD_NAMESPACE=" + ns, "HOME=" + t.TempDir()}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, logs
}

// stopOperator sends SIGTERM and expects exit status 0 within 30 s.
func stopOperator(t *testing.T, cmd *exec.Cmd, logs *logBuffer) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("operator exit after SIGTERM: %v\n%s", err, logs.tail())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("operator still running 30 s after SIGTERM\n%s", logs.tail())
	}
}

// checkStagerRBAC: the stager ServiceAccount may patch a pod of its own namespace, and may
// neither read pods nor patch pods of another namespace.
func checkStagerRBAC(t *testing.T, admin client.Client, namespaces []string, sa string) {
	t.Helper()
	for i, ns := range namespaces {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "stager-probe", Namespace: ns},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.test/x:1"}}},
		}
		must(t, admin.Create(bg(), pod))
		user, err := testEnv.AddUser(envtest.User{Name: "system:serviceaccount:" + ns + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}}, restConfig)
		if err != nil {
			t.Fatal(err)
		}
		as, err := client.New(user.Config(), client.Options{Scheme: operator.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"whisper.xdna.io/progress":"{}"}}}`))
		if err := as.Patch(bg(), pod.DeepCopy(), patch); err != nil {
			t.Errorf("stager %s may not patch a pod of its namespace: %v", ns, err)
		}
		if err := as.Get(bg(), client.ObjectKeyFromObject(pod), &corev1.Pod{}); !apierrors.IsForbidden(err) {
			t.Errorf("stager %s reading a pod: %v, want forbidden", ns, err)
		}
		other := namespaces[(i+1)%len(namespaces)]
		if other != ns {
			foreign := pod.DeepCopy()
			foreign.Namespace = other
			if err := as.Patch(bg(), foreign, patch); !apierrors.IsForbidden(err) {
				t.Errorf("stager of %s patching a pod in %s: %v, want forbidden", ns, other, err)
			}
		}
	}
}

// createClaim makes an RWX claim as the admin would (no provisioner runs in envtest).
func createClaim(t *testing.T, k8s client.Client, ns, name string) {
	t.Helper()
	err := k8s.Create(bg(), &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// encoderImage is the value of --encoder-image in args.
func encoderImage(t *testing.T, args []string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--encoder-image="); ok {
			return v
		}
	}
	t.Fatalf("no --encoder-image in %q", args)
	return ""
}

// freeAddr is a free loopback TCP address.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// httpOK GETs url and wants 200.
func httpOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return nil
}

// must fails t on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
