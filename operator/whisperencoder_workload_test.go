package operator

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

func TestEncoderDeploymentNPU(t *testing.T) {
	cfg := testConfig()
	we := testEncoder(func(we *whisperv1.WhisperEncoder) {
		we.Spec.Replicas = ptr.To(int32(2))
		we.Spec.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}}
		we.Spec.NodeSelector = map[string]string{"xdna.io/npu": "true"}
		we.Spec.Tolerations = []corev1.Toleration{{Key: "npu", Operator: corev1.TolerationOpExists}}
		we.Spec.PriorityClassName = "inference"
	})
	labels := map[string]string{labelName: appName, labelInstance: "base", labelComponent: componentEncoder, labelManagedBy: managedBy, labelEncoder: "base"}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds: period, TimeoutSeconds: 2, SuccessThreshold: 1, FailureThreshold: failures}
	}
	want := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: "ml", Labels: labels, Annotations: map[string]string{annotationKey: "key1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "whisper.xdna.io/v1alpha1", Kind: "WhisperEncoder", Name: "base", UID: "uid-1",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{labelName: appName, labelEncoder: "base"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics", annotationKey: "key1",
					"cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes": "tmp"}},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false), EnableServiceLinks: ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To(int64(40)),
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(false), RunAsUser: ptr.To(int64(0)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					NodeSelector:      map[string]string{"xdna.io/npu": "true"},
					Tolerations:       []corev1.Toleration{{Key: "npu", Operator: corev1.TolerationOpExists}},
					PriorityClassName: "inference",
					Volumes: []corev1.Volume{
						{Name: "cache", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "whisper-cache", ReadOnly: true}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
					Containers: []corev1.Container{{
						Name: "encoder", Image: "registry.test/whisper-encoder:v1", ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{"whisper-encoder"},
						Args: []string{"serve", "--weights", "/weights", "--http-addr", ":8080", "--grpc-addr", ":9090",
							"--backend", "npu", "--max-batch", "8", "--max-queue", "64", "--drain-timeout", "20s"},
						Env: []corev1.EnvVar{{Name: "TMPDIR", Value: "/tmp"}},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
							{Name: "grpc", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
						VolumeMounts: []corev1.VolumeMount{{Name: "cache", MountPath: "/weights", SubPath: "key1", ReadOnly: true}, {Name: "tmp", MountPath: "/tmp"}},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi"), corev1.ResourceCPU: resource.MustParse("1"), "amd.com/npu": resource.MustParse("1")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi"), "amd.com/npu": resource.MustParse("1")},
						},
						ReadinessProbe: probe("/readyz", 5, 3), LivenessProbe: probe("/healthz", 10, 3), StartupProbe: probe("/healthz", 2, 60),
						Lifecycle:              &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}},
						TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"IPC_LOCK"}}},
					}},
				},
			},
		},
	}
	got := encoderDeployment(we, report.StageResult{Key: "key1"}, cfg)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("encoderDeployment (-want +got):\n%s", diff)
	}
	if we.Spec.Resources.Limits != nil {
		t.Errorf("encoderDeployment modified spec.resources: %v", we.Spec.Resources)
	}
}

// defaultResources are the encoder container's resources when spec.resources is empty (weights
// of unknown size).
var defaultResources = corev1.ResourceRequirements{
	Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
}

func TestEncoderResources(t *testing.T) {
	q := resource.MustParse
	rl := func(kv ...string) corev1.ResourceList {
		l := corev1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			l[corev1.ResourceName(kv[i])] = q(kv[i+1])
		}
		return l
	}
	tests := []struct {
		name    string
		backend whisperv1.Backend
		set     corev1.ResourceRequirements
		weights int64
		want    corev1.ResourceRequirements
	}{
		{"nothing set: defaults plus the weights", whisperv1.BackendCPU, corev1.ResourceRequirements{}, 41181184, // 39.3 MiB
			corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "296Mi"), Limits: rl("memory", "1064Mi")}},
		{"a memory request above the default limit raises the limit", whisperv1.BackendCPU, corev1.ResourceRequirements{Requests: rl("memory", "4Gi")}, 0,
			corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "4Gi"), Limits: rl("memory", "4Gi")}},
		{"a memory limit alone stays alone (Kubernetes copies it to the request)", whisperv1.BackendCPU, corev1.ResourceRequirements{Limits: rl("memory", "300Mi")}, 0,
			corev1.ResourceRequirements{Requests: rl("cpu", "1"), Limits: rl("memory", "300Mi")}},
		{"a CPU limit alone: no CPU request added", whisperv1.BackendCPU, corev1.ResourceRequirements{Limits: rl("cpu", "2")}, 0,
			corev1.ResourceRequirements{Requests: rl("memory", "256Mi"), Limits: rl("cpu", "2", "memory", "1Gi")}},
		{"everything set: unchanged", whisperv1.BackendCPU, corev1.ResourceRequirements{Requests: rl("cpu", "3", "memory", "1Gi"), Limits: rl("memory", "2Gi")}, 1 << 30,
			corev1.ResourceRequirements{Requests: rl("cpu", "3", "memory", "1Gi"), Limits: rl("memory", "2Gi")}},
		{"npu adds the device", whisperv1.BackendNPU, corev1.ResourceRequirements{}, 0,
			corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "256Mi", "amd.com/npu", "1"), Limits: rl("memory", "1Gi", "amd.com/npu", "1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			we := testEncoder(func(we *whisperv1.WhisperEncoder) {
				we.Spec.Backend, we.Spec.Resources = tt.backend, *tt.set.DeepCopy()
			})
			got := encoderResources(we.Spec.Defaulted(), tt.weights)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("encoderResources (-want +got):\n%s", diff)
			}
			if !cmp.Equal(tt.set, we.Spec.Resources) {
				t.Errorf("encoderResources modified spec.resources: %v", we.Spec.Resources)
			}
		})
	}
}

func TestEncoderDeploymentVariants(t *testing.T) {
	cfg := testConfig()
	tests := []struct {
		name  string
		mut   func(*whisperv1.WhisperEncoder)
		check func(d *appsv1.Deployment) (got, want any)
	}{
		{"cpu: no device, restricted, non-root", func(we *whisperv1.WhisperEncoder) { we.Spec.Backend = whisperv1.BackendCPU },
			func(d *appsv1.Deployment) (any, any) {
				c := d.Spec.Template.Spec.Containers[0]
				return []any{c.Resources, d.Spec.Template.Spec.SecurityContext, c.SecurityContext.Capabilities},
					[]any{defaultResources, restrictedPodSecurity(65532), &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
			}},
		{"auto is the CPU backend today: no device, restricted, non-root, --backend cpu", func(we *whisperv1.WhisperEncoder) { we.Spec.Backend = whisperv1.BackendAuto },
			func(d *appsv1.Deployment) (any, any) {
				c := d.Spec.Template.Spec.Containers[0]
				return []any{c.Resources, d.Spec.Template.Spec.SecurityContext, c.SecurityContext.Capabilities, c.Args[7:9]},
					[]any{defaultResources, restrictedPodSecurity(65532), &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, []string{"--backend", "cpu"}}
			}},
		{"unset backend is auto", func(we *whisperv1.WhisperEncoder) { we.Spec.Backend = ""; we.Spec.NPU = whisperv1.NPUSpec{} },
			func(d *appsv1.Deployment) (any, any) {
				c := d.Spec.Template.Spec.Containers[0]
				return []any{c.Resources, c.Args[7:9]}, []any{defaultResources, []string{"--backend", "cpu"}}
			}},
		{"two devices of another resource", func(we *whisperv1.WhisperEncoder) {
			we.Spec.NPU = whisperv1.NPUSpec{ResourceName: "xdna.io/npu", Count: 2}
		},
			func(d *appsv1.Deployment) (any, any) {
				return d.Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceList{"xdna.io/npu": resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}
			}},
		{"autoscaling leaves replicas to the HPA", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Replicas = ptr.To(int32(7))
			we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 3, TargetQueueDepth: 4}
		}, func(d *appsv1.Deployment) (any, any) { return d.Spec.Replicas, (*int32)(nil) }},
		{"unset replicas is 1", func(we *whisperv1.WhisperEncoder) { we.Spec.Replicas = nil },
			func(d *appsv1.Deployment) (any, any) { return *d.Spec.Replicas, int32(1) }},
		{"serving ports and limits", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Serving = whisperv1.ServingSpec{MaxBatch: 2, MaxQueue: 5, HTTPPort: 8000, GRPCPort: 50051}
		}, func(d *appsv1.Deployment) (any, any) {
			c := d.Spec.Template.Spec.Containers[0]
			return []any{c.Args[3:], c.Ports[1].ContainerPort, d.Spec.Template.Annotations["prometheus.io/port"]},
				[]any{[]string{"--http-addr", ":8000", "--grpc-addr", ":50051", "--backend", "npu", "--max-batch", "2", "--max-queue", "5", "--drain-timeout", "20s"}, int32(50051), "8000"}
		}},
		{"zero serving values get the API defaults", func(we *whisperv1.WhisperEncoder) { we.Spec.Serving = whisperv1.ServingSpec{} },
			func(d *appsv1.Deployment) (any, any) {
				return d.Spec.Template.Spec.Containers[0].Args[3:], []string{"--http-addr", ":8080", "--grpc-addr", ":9090", "--backend", "npu", "--max-batch", "8", "--max-queue", "64", "--drain-timeout", "20s"}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.check(encoderDeployment(testEncoder(tt.mut), report.StageResult{Key: "k"}, cfg))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestEncoderTranscriptionArgs: spec.transcription (defaulted) becomes serve's --default-* flags
// for weights that transcribe; encoder-only weights get none.
func TestEncoderTranscriptionArgs(t *testing.T) {
	cfg := testConfig()
	whole := report.StageResult{Key: "k", Capabilities: &report.Capabilities{Encode: true, Transcribe: true, Translate: true}}
	tests := []struct {
		name    string
		mut     func(*whisperv1.WhisperEncoder)
		weights report.StageResult
		want    []string
	}{
		{"encoder-only weights", func(we *whisperv1.WhisperEncoder) { we.Spec.Transcription.Language = "de" }, report.StageResult{Key: "k"}, nil},
		{"defaults", func(we *whisperv1.WhisperEncoder) { we.Spec.Transcription = whisperv1.TranscriptionSpec{} }, whole,
			[]string{"--default-task", "transcribe", "--default-beam-size", "1", "--default-word-timestamps=false", "--decoder-weights", "bf16"}},
		{"set", func(we *whisperv1.WhisperEncoder) {
			we.Spec.Transcription = whisperv1.TranscriptionSpec{Language: "de", Task: whisperv1.TaskTranslate, BeamSize: 5, WordTimestamps: true, DecoderWeights: whisperv1.DecoderWeightsInt8}
		}, whole, []string{"--default-language", "de", "--default-task", "translate", "--default-beam-size", "5", "--default-word-timestamps=true", "--decoder-weights", "int8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := encoderDeployment(testEncoder(tt.mut), tt.weights, cfg).Spec.Template.Spec.Containers[0].Args
			i := slices.Index(args, "--drain-timeout")
			if diff := cmp.Diff(tt.want, args[i+2:], cmpEmpty); diff != "" {
				t.Errorf("flags after --drain-timeout (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })

// TestEncoderShutdownFits: the grace period covers the preStop delay, the encoder's own shutdown
// delay and its drain timeout (the flag the pod passes), with room to exit.
func TestEncoderShutdownFits(t *testing.T) {
	d := encoderDeployment(testEncoder(), report.StageResult{Key: "k"}, testConfig())
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	i := slices.Index(c.Args, "--drain-timeout")
	if i < 0 {
		t.Fatalf("args %v: no --drain-timeout", c.Args)
	}
	drain, err := time.ParseDuration(c.Args[i+1])
	if err != nil {
		t.Fatal(err)
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if need := preStop + encoderShutdownDelay + drain; grace < need+5*time.Second || preStop <= 0 {
		t.Errorf("grace period %v for preStop %v + shutdown delay %v + drain %v: want ≥ 5 s to spare", grace, preStop, encoderShutdownDelay, drain)
	}
}

func TestEncoderDisruptionBudget(t *testing.T) {
	pdb := encoderDisruptionBudget(testEncoder())
	want := policyv1.PodDisruptionBudgetSpec{
		Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{labelName: appName, labelEncoder: "base"}},
		MaxUnavailable: ptr.To(intstr.FromInt32(1)),
	}
	if diff := cmp.Diff(want, pdb.Spec); diff != "" {
		t.Errorf("PodDisruptionBudget spec (-want +got):\n%s", diff)
	}
	if ref := metav1.GetControllerOf(pdb); ref == nil || ref.Name != "base" || pdb.Labels[labelManagedBy] != managedBy {
		t.Errorf("PodDisruptionBudget controller %+v, labels %v", ref, pdb.Labels)
	}
}

func TestEncoderService(t *testing.T) {
	got := encoderService(testEncoder())
	want := corev1.ServiceSpec{
		Type:     corev1.ServiceTypeClusterIP,
		Selector: map[string]string{labelName: appName, labelEncoder: "base"},
		Ports: []corev1.ServicePort{
			{Name: "http", Port: 8080, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("http")},
			{Name: "grpc", Port: 9090, TargetPort: intstr.FromString("grpc"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c")},
		},
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("encoderService spec (-want +got):\n%s", diff)
	}
	if got.Name != "base" || got.Namespace != "ml" || *got.OwnerReferences[0].Controller != true {
		t.Errorf("encoderService metadata = %+v", got.ObjectMeta)
	}
}

func TestEncoderAutoscaler(t *testing.T) {
	cfg := testConfig()
	if got := encoderAutoscaler(testEncoder(), report.Capabilities{Encode: true}, cfg); got != nil {
		t.Errorf("no spec.autoscaling → HPA %+v, want nil", got)
	}
	we := testEncoder(func(we *whisperv1.WhisperEncoder) {
		we.Spec.Autoscaling = &whisperv1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 10, TargetQueueDepth: 6}
	})
	want := autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "base"},
		MinReplicas:    ptr.To(int32(2)),
		MaxReplicas:    10,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "whisper_encoder_queue_depth"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(6, resource.DecimalSI)},
		}}},
		// Up at once; down after the default 300 s window.
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To(int32(0)),
				SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
				Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
					{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				},
			},
			ScaleDown: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To(int32(300)),
				SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
				Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}},
			},
		},
	}
	if diff := cmp.Diff(want, encoderAutoscaler(we, report.Capabilities{Encode: true}, cfg).Spec); diff != "" {
		t.Errorf("encoderAutoscaler (-want +got):\n%s", diff)
	}
	// A model that transcribes also scales on its queued decode work.
	want.Metrics = append(want.Metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "whisper_encoder_decode_queue_depth"},
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(6, resource.DecimalSI)},
	}})
	whole := report.Capabilities{Encode: true, Transcribe: true}
	if diff := cmp.Diff(want, encoderAutoscaler(we, whole, cfg).Spec); diff != "" {
		t.Errorf("encoderAutoscaler of a model that transcribes (-want +got):\n%s", diff)
	}
	cfg.DecodeQueueDepthMetric = ""
	if got := encoderAutoscaler(we, whole, cfg).Spec.Metrics; len(got) != 1 {
		t.Errorf("without a decode metric: %d metrics, want 1", len(got))
	}
}

func TestKeepFunctions(t *testing.T) {
	live := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(5))}}
	auto := &appsv1.Deployment{}
	keepAutoscaledReplicas(live, auto)
	fixed := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2))}}
	keepAutoscaledReplicas(live, fixed)
	if *auto.Spec.Replicas != 5 || *fixed.Spec.Replicas != 2 {
		t.Errorf("keepAutoscaledReplicas: autoscaled %d (want 5, the HPA's), fixed %d (want 2, ours)", *auto.Spec.Replicas, *fixed.Spec.Replicas)
	}
	svc := &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.7", ClusterIPs: []string{"10.0.0.7"}, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}}}
	desired := encoderService(testEncoder())
	keepServiceAllocations(svc, desired)
	if desired.Spec.ClusterIP != "10.0.0.7" || len(desired.Spec.ClusterIPs) != 1 || len(desired.Spec.IPFamilies) != 1 {
		t.Errorf("keepServiceAllocations lost the allocation: %+v", desired.Spec)
	}
}

// liveCopy is obj as the API server might return it: what the operator set, plus defaults and
// allocations the server adds, plus metadata it manages.
func liveCopy(t *testing.T, obj client.Object, mut func(map[string]any)) map[string]any {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	meta := m["metadata"].(map[string]any)
	meta["resourceVersion"], meta["uid"], meta["generation"] = "42", "u-1", int64(3)
	if mut != nil {
		mut(m)
	}
	return m
}

func container(m map[string]any) map[string]any {
	return m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
}

// TestContains: the no-write check of apply: a live object holding every field the operator sets
// needs no write, whatever the API server or others added; a hand edit of any of them does.
func TestContains(t *testing.T) {
	cfg := testConfig()
	d := encoderDeployment(testEncoder(), report.StageResult{Key: "k"}, cfg)
	want, err := appliedFields(d)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		mut   func(map[string]any)
		write bool
	}{
		{"as applied", nil, false},
		{"server defaults and status", func(m map[string]any) {
			m["spec"].(map[string]any)["revisionHistoryLimit"] = int64(10)
			container(m)["terminationMessagePath"] = "/dev/termination-log"
			container(m)["livenessProbe"].(map[string]any)["timeoutSeconds"] = int64(2)
			m["status"] = map[string]any{"replicas": int64(2)}
		}, false},
		{"labels, annotations and env others added", func(m map[string]any) {
			m["metadata"].(map[string]any)["labels"].(map[string]any)["team"] = "ml"
			m["metadata"].(map[string]any)["annotations"].(map[string]any)["deployment.kubernetes.io/revision"] = "3"
			c := container(m)
			c["env"] = append(c["env"].([]any), map[string]any{"name": "EXTRA", "value": "1"})
		}, false},
		{"replicas edited", func(m map[string]any) { m["spec"].(map[string]any)["replicas"] = int64(5) }, true},
		{"image edited", func(m map[string]any) { container(m)["image"] = "evil:latest" }, true},
		{"env value edited", func(m map[string]any) {
			container(m)["env"] = []any{map[string]any{"name": "TMPDIR", "value": "/var/tmp"}}
		}, true},
		{"env removed", func(m map[string]any) { delete(container(m), "env") }, true},
		{"an arg appended", func(m map[string]any) { c := container(m); c["args"] = append(c["args"].([]any), "--debug") }, true},
		{"our label edited", func(m map[string]any) {
			m["metadata"].(map[string]any)["labels"].(map[string]any)[labelManagedBy] = "someone"
		}, true},
		{"emptyDir volume replaced", func(m map[string]any) {
			v := m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["volumes"].([]any)[1].(map[string]any)
			delete(v, "emptyDir")
			v["hostPath"] = map[string]any{"path": "/tmp"}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := !contains(ownedFields(want), liveCopy(t, d, tt.mut)); got != tt.write {
				t.Errorf("write needed = %v, want %v", got, tt.write)
			}
		})
	}
}

// TestImagePullSecrets: the operator's pull secrets reach the pod spec of staging Jobs and of
// encoder Deployments on either backend, in order; without any the pod spec has none, so
// objects written before the setting existed are unchanged.
func TestImagePullSecrets(t *testing.T) {
	cpu := func(we *whisperv1.WhisperEncoder) { we.Spec.Backend = whisperv1.BackendCPU }
	builders := []struct {
		name  string
		build func(cfg Config) *corev1.PodSpec
	}{
		{"staging Job", func(cfg Config) *corev1.PodSpec {
			return &stagingJob(testEncoder(), "h", 1, nil, cfg).Spec.Template.Spec
		}},
		{"npu Deployment", func(cfg Config) *corev1.PodSpec {
			return &encoderDeployment(testEncoder(), report.StageResult{Key: "k"}, cfg).Spec.Template.Spec
		}},
		{"cpu Deployment", func(cfg Config) *corev1.PodSpec {
			return &encoderDeployment(testEncoder(cpu), report.StageResult{Key: "k"}, cfg).Spec.Template.Spec
		}},
	}
	tests := []struct {
		name    string
		secrets []string
		want    []corev1.LocalObjectReference
	}{
		{"none", nil, nil},
		{"empty list", []string{}, nil},
		{"one", []string{"regcred"}, []corev1.LocalObjectReference{{Name: "regcred"}}},
		{"two in order", []string{"mirror", "regcred"}, []corev1.LocalObjectReference{{Name: "mirror"}, {Name: "regcred"}}},
	}
	for _, b := range builders {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				cfg := testConfig()
				cfg.ImagePullSecrets = tt.secrets
				if diff := cmp.Diff(tt.want, b.build(cfg).ImagePullSecrets); diff != "" {
					t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
				}
			})
		}
	}
	without, with := testConfig(), testConfig()
	with.ImagePullSecrets = []string{"regcred"}
	want, err := appliedFields(encoderDeployment(testEncoder(), report.StageResult{Key: "k"}, with))
	if err != nil {
		t.Fatal(err)
	}
	if contains(ownedFields(want), liveCopy(t, encoderDeployment(testEncoder(), report.StageResult{Key: "k"}, without), nil)) {
		t.Errorf("apply would skip a Deployment without the new image pull secret: adding one would never reach it")
	}
}
