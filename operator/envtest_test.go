package operator

// The harness for tests against a real kube-apiserver and etcd (envtest). The binaries are built
// from source by hack/k8s-bins.sh; `make test-operator` sets KUBEBUILDER_ASSETS to them. Without
// it these tests skip (plain `go test ./...` stays fast); `make test` always runs them.
//
// envtest runs no controllers: the tests play the Job and Deployment controllers by writing the
// status those controllers would write, and there is no garbage collector (owner references are
// asserted instead).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

var (
	testEnv    *envtest.Environment
	restConfig *rest.Config
	k8s        client.Client // the test's own client (plays user and controllers)
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return m.Run() // envtest tests skip themselves
	}
	level := zapcore.ErrorLevel // OPERATOR_TEST_LOG=1 shows the operator's logs
	if os.Getenv("OPERATOR_TEST_LOG") != "" {
		level = zapcore.DebugLevel
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases"), filepath.Join("testdata", "crds")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	var err error
	if restConfig, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start envtest with binaries from %s: %v\n", assets, err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	restConfig.QPS, restConfig.Burst = 500, 1000
	if k8s, err = client.New(restConfig, client.Options{Scheme: Scheme()}); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	return m.Run()
}

// needEnvtest skips t when no API server was started.
func needEnvtest(t testing.TB) {
	t.Helper()
	if testEnv == nil {
		t.Skip("no KUBEBUILDER_ASSETS: run `make test-operator` (builds kube-apiserver and etcd from source once)")
	}
}

// testNamespace creates a fresh namespace, with the cache claim unless noClaim.
func testNamespace(t testing.TB, withClaim bool) string {
	t.Helper()
	ctx := context.Background()
	ns := "t-" + rand.String(8)
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	if withClaim {
		createClaim(t, ns)
	}
	return ns
}

func createClaim(t testing.TB, ns string) {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "whisper-cache", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
		},
	}))
}

// counts tallies the operator's API calls made through its client.
type counts struct {
	mu     sync.Mutex
	writes map[string]int // "verb kind" → n
	reads  atomic.Int64   // Get calls on WhisperEncoders = reconciles started
}

func (c *counts) write(verb string, obj any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	what := fmt.Sprintf("%T", obj)
	if u, ok := obj.(interface{ GetKind() string }); ok { // an unstructured apply configuration
		what = u.GetKind()
	}
	c.writes[verb+" "+what]++
}

func (c *counts) total() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, cp := 0, map[string]int{}
	for k, v := range c.writes {
		n += v
		cp[k] = v
	}
	return n, cp
}

func (c *counts) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = map[string]int{}
	c.reads.Store(0)
}

// operatorRun is one running operator process (manager + reconciler) watching some namespaces.
type operatorRun struct {
	counts   *counts
	requests *requestCounter
	cancel   context.CancelFunc
	done     chan error
}

// startOperator runs a manager watching namespaces, with a client that counts every write.
// Automatic staging retries wait an hour: they happen only when a test asks.
func startOperator(t testing.TB, namespaces ...string) *operatorRun {
	t.Helper()
	return startOperatorWith(t, func(cfg *Config) { cfg.RetryBaseDelay, cfg.RetryMaxDelay = time.Hour, time.Hour }, namespaces...)
}

// startOperatorWith is startOperator with the configuration changed by mut.
func startOperatorWith(t testing.TB, mut func(*Config), namespaces ...string) *operatorRun {
	t.Helper()
	cfg := testConfig()
	mut(&cfg)
	run := &operatorRun{counts: &counts{writes: map[string]int{}}, requests: &requestCounter{}, done: make(chan error, 1)}
	rc := rest.CopyConfig(restConfig)
	rc.Wrap(run.requests.wrap)
	mgr, err := NewManager(rc, Options{Config: cfg, WatchNamespaces: namespaces, MetricsAddr: "0", ProbeAddr: "0", SkipControllerNameValidation: true})
	must(t, err)
	c := run.counts
	wrapped := interceptor.NewClient(noWatch{mgr.GetClient()}, interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*whisperv1.WhisperEncoder); ok {
				c.reads.Add(1)
			}
			return cl.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			c.write("create", obj)
			return cl.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			c.write("update", obj)
			return cl.Update(ctx, obj, opts...)
		},
		Apply: func(ctx context.Context, cl client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			c.write("apply", obj)
			return cl.Apply(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			c.write("patch", obj)
			return cl.Patch(ctx, obj, p, opts...)
		},
		Delete: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			c.write("delete", obj)
			return cl.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, cl client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			c.write("update/"+sub, obj)
			return cl.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			c.write("patch/"+sub, obj)
			return cl.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reconciler{Client: wrapped, APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("whisper-operator"), Config: cfg}
	must(t, r.SetupWithManager(ctx, mgr))
	run.cancel = cancel
	go func() { run.done <- mgr.Start(ctx) }()
	t.Cleanup(run.stop)
	return run
}

// noWatch lets the interceptor wrap the manager's cached client, which has no Watch.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, fmt.Errorf("watch: not supported by the manager's client")
}

// stop ends the operator and waits for its manager to return.
func (o *operatorRun) stop() {
	if o.cancel == nil {
		return
	}
	o.cancel()
	o.cancel = nil
	<-o.done
}

// requestCounter counts every HTTP request the operator's manager sends to the API server.
type requestCounter struct {
	mu    sync.Mutex
	total int
	verbs map[string]int
}

type countingTransport struct {
	next http.RoundTripper
	c    *requestCounter
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := req.Method
	if req.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	t.c.mu.Lock()
	t.c.total++
	if t.c.verbs == nil {
		t.c.verbs = map[string]int{}
	}
	t.c.verbs[verb]++
	t.c.mu.Unlock()
	return t.next.RoundTrip(req)
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return countingTransport{next: rt, c: c}
}

func (c *requestCounter) snapshot() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := map[string]int{}
	for k, v := range c.verbs {
		cp[k] = v
	}
	return c.total, cp
}

// eventually polls cond until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// getWE reads a WhisperEncoder.
func getWE(ns, name string) (*whisperv1.WhisperEncoder, error) {
	var we whisperv1.WhisperEncoder
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &we)
	return &we, err
}

// waitPhase waits until ns/name reports phase and returns it.
func waitPhase(t testing.TB, ns, name string, phase whisperv1.Phase) *whisperv1.WhisperEncoder {
	t.Helper()
	var we *whisperv1.WhisperEncoder
	eventually(t, 20*time.Second, fmt.Sprintf("%s/%s phase %s", ns, name, phase), func() error {
		var err error
		if we, err = getWE(ns, name); err != nil {
			return err
		}
		if we.Status.Phase != phase || we.Status.ObservedGeneration != we.Generation {
			return fmt.Errorf("phase %q (observed generation %d of %d), conditions %+v", we.Status.Phase, we.Status.ObservedGeneration, we.Generation, we.Status.Conditions)
		}
		return nil
	})
	return we
}

// waitJob waits for the staging Job of a source hash.
func waitJob(t testing.TB, ns, hash string) *batchv1.Job {
	t.Helper()
	var job batchv1.Job
	eventually(t, 20*time.Second, "staging Job "+stagingJobName(hash), func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: stagingJobName(hash)}, &job)
	})
	return &job
}

// finishJob plays the Job controller: it creates the Job's pod, terminates its stage container
// with msg as termination message and marks the Job Complete (succeeded) or Failed.
func finishJob(t testing.TB, job *batchv1.Job, succeeded bool, msg string) {
	t.Helper()
	must(t, finishJobErr(context.Background(), job, succeeded, msg))
}

func finishJobErr(ctx context.Context, job *batchv1.Job, succeeded bool, msg string) error {
	pod, err := createJobPod(ctx, job)
	if err != nil {
		return err
	}
	now := metav1.Now()
	phase, exit := corev1.PodSucceeded, int32(0)
	if !succeeded {
		phase, exit = corev1.PodFailed, 1
	}
	pod.Status = corev1.PodStatus{Phase: phase, StartTime: &now, ContainerStatuses: []corev1.ContainerStatus{{
		Name: stageContainer, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: msg, StartedAt: now, FinishedAt: now}},
	}}}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("pod status of Job %s: %w", job.Name, err)
	}
	return retryOnConflict(func() error {
		var j batchv1.Job
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), &j); err != nil {
			return err
		}
		j.Status.StartTime = &now
		if succeeded {
			j.Status.Succeeded, j.Status.CompletionTime = 1, &now
			j.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
			}
		} else {
			j.Status.Failed = 1
			j.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
			}
		}
		return k8s.Status().Update(ctx, &j)
	})
}

// createJobPod creates a pod of job as the Job controller would.
func createJobPod(ctx context.Context, job *batchv1.Job) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-" + rand.String(5), Namespace: job.Namespace,
			Labels:          merged(job.Spec.Template.Labels, map[string]string{labelJobUID: string(job.UID), "batch.kubernetes.io/job-name": job.Name}),
			Annotations:     job.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := k8s.Create(ctx, pod); err != nil {
		return nil, fmt.Errorf("create pod of Job %s: %w", job.Name, err)
	}
	return pod, nil
}

// retryOnConflict runs f until it does not fail with an optimistic-lock conflict (at most 50 times).
func retryOnConflict(f func() error) error {
	var err error
	for range 50 {
		if err = f(); !apierrors.IsConflict(err) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// stagedMessage is the stager's success result for key.
func stagedMessage(key string) string {
	return fmt.Sprintf(`{"key":%q,"dir":"/cache/%s","sourceSHA256":"%064d","sourcePrecision":"fp32","sizeBytes":41181184,"stagedAt":"2026-05-01T12:00:00Z"}`, key, key, 7)
}

// rollOut plays the Deployment controller: every desired replica updated, ready and available.
func rollOut(t testing.TB, ns, name string) {
	t.Helper()
	must(t, retryOnConflict(func() error {
		var d appsv1.Deployment
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		return rollOutErr(context.Background(), &d)
	}))
}

func rollOutErr(ctx context.Context, d *appsv1.Deployment) error {
	n := replicasOf(d)
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}},
	}
	return k8s.Status().Update(ctx, d)
}

// namespaceReader is the test client limited to one namespace.
type namespaceReader struct{ ns string }

func (r namespaceReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return k8s.Get(ctx, key, obj, opts...)
}

func (r namespaceReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return k8s.List(ctx, list, append(opts, client.InNamespace(r.ns))...)
}
