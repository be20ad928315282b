package operator

import (
	"context"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// Serving: once the weights are staged, a Deployment runs `whisper-encoder serve` with the cache
// claim mounted read-only at the key's subPath, a Service exposes its HTTP and gRPC ports, and
// with spec.autoscaling an autoscaling/v2 HorizontalPodAutoscaler scales it on queue depth.

const weightsMount = "/weights"

// Shutdown of an encoder pod. Deleting a pod takes it out of the Service's ready endpoints at
// once, but kube-proxy and load balancers learn it a few seconds later: the preStop hook keeps
// the encoder serving for preStopDelay before it gets SIGTERM. The encoder then fails its
// readiness, closes its listeners (after its own --shutdown-delay where it has one, at most
// encoderShutdownDelay) and gives accepted requests drainTimeout to finish. The grace period
// covers all of it with room to exit, so the kubelet never kills a draining encoder.
const (
	preStopDelay         = 5 * time.Second
	encoderShutdownDelay = 5 * time.Second
	drainTimeout         = 20 * time.Second
	terminationGrace     = preStopDelay + encoderShutdownDelay + drainTimeout + 10*time.Second
)

// workloadView is what the serving step observed after applying.
type workloadView struct {
	Deployment *appsv1.Deployment
	Service    *corev1.Service
	Pods       []corev1.Pod
	// MissingSecrets describes the serving Secrets the pods mount that do not exist.
	MissingSecrets []string
	// DRAUnavailable says why pods asking for their NPU by DRA cannot be made ("" when they can).
	DRAUnavailable string
}

// desiredReplicas is the replica count the operator sets, or nil when an autoscaler owns it.
func desiredReplicas(spec whisperv1.WhisperEncoderSpec) *int32 {
	if spec.Autoscaling != nil {
		return nil
	}
	return ptr.To(*spec.Defaulted().Replicas)
}

// podBackend is the backend encoder pods are built for (spec defaulted). auto is the CPU backend
// until the encoder has an NPU backend: an auto encoder requests no device, runs restricted and
// serves on any node.
func podBackend(spec whisperv1.WhisperEncoderSpec) whisperv1.Backend {
	if spec.Backend == whisperv1.BackendAuto {
		return whisperv1.BackendCPU
	}
	return spec.Backend
}

const (
	// tmpVolume is the encoder's scratch emptyDir, mounted at /tmp.
	tmpVolume = "tmp"
	// safeToEvictLocalVolumes names the emptyDir volumes the cluster autoscaler may
	// discard when it drains a node to scale it down.
	safeToEvictLocalVolumes = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"
)

// encoderDeployment builds the Deployment serving the staged weights from the cache claim.
func encoderDeployment(we *whisperv1.WhisperEncoder, weights report.StageResult, cfg Config) *appsv1.Deployment {
	key := weights.Key
	spec := we.Spec.Defaulted()
	s := spec.Serving
	meta := controlledMeta(we)
	meta.Annotations = map[string]string{annotationKey: key}
	podSecurity, containerSecurity := restrictedPodSecurity(cfg.RunAsUser), restrictedContainerSecurity()
	if podBackend(spec) == whisperv1.BackendNPU {
		podSecurity, containerSecurity = npuPodSecurity(), npuContainerSecurity()
	}
	d := &appsv1.Deployment{
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: desiredReplicas(spec),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(we)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: encoderLabels(we),
					Annotations: map[string]string{
						"prometheus.io/scrape": "true",
						"prometheus.io/port":   strconv.Itoa(int(s.HTTPPort)),
						"prometheus.io/path":   "/metrics",
						annotationKey:          key,
						// The encoder's /tmp is scratch: without this the cluster
						// autoscaler (--skip-nodes-with-local-storage, its default)
						// would never scale down a node running an encoder pod.
						safeToEvictLocalVolumes: tmpVolume,
					},
				},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To(int64(terminationGrace / time.Second)),
					SecurityContext:               podSecurity,
					ImagePullSecrets:              pullSecrets(cfg),
					NodeSelector:                  we.Spec.NodeSelector,
					Tolerations:                   we.Spec.Tolerations,
					Affinity:                      we.Spec.Affinity,
					PriorityClassName:             we.Spec.PriorityClassName,
					Volumes: []corev1.Volume{
						claimVolume("cache", cfg.CacheClaimName, true),
						{Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
					Containers: []corev1.Container{{
						Name:            encoderContainer,
						Image:           image(we, cfg),
						ImagePullPolicy: cfg.ImagePullPolicy,
						Command:         []string{cfg.EncoderCommand},
						Args: append([]string{"serve",
							"--weights", weightsMount,
							"--http-addr", ":" + strconv.Itoa(int(s.HTTPPort)),
							"--grpc-addr", ":" + strconv.Itoa(int(s.GRPCPort)),
							"--backend", string(podBackend(spec)),
							"--max-batch", strconv.Itoa(int(s.MaxBatch)),
							"--max-queue", strconv.Itoa(int(s.MaxQueue)),
							"--drain-timeout", drainTimeout.String(),
						}, transcriptionArgs(spec, weights.Caps())...),
						Env: []corev1.EnvVar{{Name: "TMPDIR", Value: tmpMount}},
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: s.HTTPPort, Protocol: corev1.ProtocolTCP},
							{Name: "grpc", ContainerPort: s.GRPCPort, Protocol: corev1.ProtocolTCP},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "cache", MountPath: weightsMount, SubPath: key, ReadOnly: true},
							{Name: tmpVolume, MountPath: tmpMount},
						},
						Resources:      encoderResources(spec, weights.SizeBytes),
						ReadinessProbe: httpProbe("/readyz", 5, 3),
						LivenessProbe:  httpProbe("/healthz", 10, 3),
						StartupProbe:   httpProbe("/healthz", 2, 60),
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
							Sleep: &corev1.SleepAction{Seconds: int64(preStopDelay / time.Second)},
						}},
						TerminationMessagePath:   corev1.TerminationMessagePathDefault,
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext:          containerSecurity,
					}},
				},
			},
		},
	}
	secureServing(&d.Spec.Template, cfg)
	if usesDRA(spec) {
		withNPUClaim(&d.Spec.Template.Spec, npuClaimTemplateName(we, spec.NPU))
	}
	return d
}

// transcriptionArgs are the serve flags of spec.transcription (spec defaulted): the defaults of
// the transcription API, where a request leaves them unset, and the decoder's weight precision. Weights that cannot transcribe get
// none (an encoder-only server has no transcription API to configure).
func transcriptionArgs(spec whisperv1.WhisperEncoderSpec, caps report.Capabilities) []string {
	if !caps.Transcribe {
		return nil
	}
	t := spec.Transcription
	var args []string
	if t.Language != "" {
		args = append(args, "--default-language", t.Language)
	}
	return append(args,
		"--default-task", string(t.Task),
		"--default-beam-size", strconv.Itoa(int(t.BeamSize)),
		"--default-word-timestamps="+strconv.FormatBool(t.WordTimestamps),
		"--decoder-weights", string(t.DecoderWeights),
	)
}

// Default resources of the encoder container, for what spec.resources leaves unset: the
// scheduler reserves a core and the weights, and a runaway process meets its memory limit instead
// of the node's. The memory figures add the staged weights' size to a fixed part: the process
// without weights is ~15 MB, one window's activations a few MB per batch slot, and the server
// holds request bodies and decoded audio up to its admission budgets (hundreds of MB at most).
var (
	defaultCPURequest      = resource.MustParse("1")
	defaultMemoryBase      = resource.MustParse("256Mi") // request = base + weights
	defaultMemoryLimitBase = resource.MustParse("1Gi")   // limit = base + weights
)

// encoderResources is spec.resources (spec defaulted) with the defaults above where it sets
// neither request nor limit of CPU or memory (a memory request without a limit gets the default
// limit, raised to the request), plus, for backend npu with the device plugin, the device as
// request and limit (with DRA the pod's claim stands for it: see withNPUClaim).
func encoderResources(spec whisperv1.WhisperEncoderSpec, weightsBytes int64) corev1.ResourceRequirements {
	res := *spec.Resources.DeepCopy()
	if res.Requests == nil {
		res.Requests = corev1.ResourceList{}
	}
	if res.Limits == nil {
		res.Limits = corev1.ResourceList{}
	}
	_, cpuReq := res.Requests[corev1.ResourceCPU]
	if _, cpuLim := res.Limits[corev1.ResourceCPU]; !cpuReq && !cpuLim {
		res.Requests[corev1.ResourceCPU] = defaultCPURequest
	}
	weights := resource.NewQuantity(max(weightsBytes, 0), resource.BinarySI)
	memReq, hasReq := res.Requests[corev1.ResourceMemory]
	if _, hasLim := res.Limits[corev1.ResourceMemory]; !hasLim {
		limit := plus(defaultMemoryLimitBase, weights)
		if hasReq && memReq.Cmp(limit) > 0 {
			limit = memReq
		}
		res.Limits[corev1.ResourceMemory] = limit
		if !hasReq {
			res.Requests[corev1.ResourceMemory] = plus(defaultMemoryBase, weights)
		}
	}
	if podBackend(spec) == whisperv1.BackendNPU && !usesDRA(spec) {
		n := spec.NPU
		q := *resource.NewQuantity(int64(n.Count), resource.DecimalSI)
		res.Requests[corev1.ResourceName(n.ResourceName)] = q
		res.Limits[corev1.ResourceName(n.ResourceName)] = q
	}
	return res
}

// plus is a + b rounded up to whole MiB (a readable quantity in the pod spec).
func plus(a resource.Quantity, b *resource.Quantity) resource.Quantity {
	const mib = 1 << 20
	sum := a.Value() + b.Value()
	return *resource.NewQuantity((sum+mib-1)/mib*mib, resource.BinarySI)
}

func httpProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   2,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

// encoderService builds the ClusterIP Service in front of the encoder pods.
func encoderService(we *whisperv1.WhisperEncoder) *corev1.Service {
	s := we.Spec.Defaulted().Serving
	return &corev1.Service{
		ObjectMeta: controlledMeta(we),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(we),
			Ports: []corev1.ServicePort{
				{Name: "http", Port: s.HTTPPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("http")},
				{Name: "grpc", Port: s.GRPCPort, TargetPort: intstr.FromString("grpc"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c")},
			},
		},
	}
}

// encoderAutoscaler builds the HorizontalPodAutoscaler for spec.autoscaling, or nil without it.
// It scales the Deployment on the average of the encoder's queue-depth gauge per pod, which a
// metrics adapter (for example prometheus-adapter) must serve through the custom metrics API.
func encoderAutoscaler(we *whisperv1.WhisperEncoder, caps report.Capabilities, cfg Config) *autoscalingv2.HorizontalPodAutoscaler {
	a := we.Spec.Defaulted().Autoscaling
	if a == nil {
		return nil
	}
	metrics := []autoscalingv2.MetricSpec{podsMetric(cfg.QueueDepthMetric, a.TargetQueueDepth)}
	if caps.Transcribe && cfg.DecodeQueueDepthMetric != "" {
		metrics = append(metrics, podsMetric(cfg.DecodeQueueDepthMetric, a.TargetQueueDepth))
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: controlledMeta(we),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: we.Name},
			MinReplicas:    ptr.To(a.MinReplicas),
			MaxReplicas:    a.MaxReplicas,
			Metrics:        metrics,
			Behavior:       encoderBehavior(a),
		},
	}
}

// podsMetric is an average-per-pod target of the pods metric name.
func podsMetric(name string, target int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.PodsMetricSourceType,
		Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: name},
			Target: autoscalingv2.MetricTarget{
				Type:         autoscalingv2.AverageValueMetricType,
				AverageValue: resource.NewQuantity(int64(target), resource.DecimalSI),
			},
		},
	}
}

// encoderDisruptionBudget lets voluntary disruptions (node drains, cluster-autoscaler scale-down)
// evict one encoder pod at a time, so a drain never takes every replica at once; with one
// replica it still allows the eviction (a budget that never allows one would block drains).
func encoderDisruptionBudget(we *whisperv1.WhisperEncoder) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: controlledMeta(we),
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(we)},
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
		},
	}
}

// controlledMeta is the metadata of an object only we uses (Deployment, Service, autoscaler):
// named like we, in its namespace, with the encoder labels and we as controller.
func controlledMeta(we *whisperv1.WhisperEncoder) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            we.Name,
		Namespace:       we.Namespace,
		Labels:          encoderLabels(we),
		OwnerReferences: []metav1.OwnerReference{controllerRef(we)},
	}
}

// controllerRef makes we the managing owner of an object only it uses.
func controllerRef(we *whisperv1.WhisperEncoder) metav1.OwnerReference {
	ref := sharedOwnerRef(we)
	ref.Controller, ref.BlockOwnerDeletion = ptr.To(true), ptr.To(true)
	return ref
}

// restrictedPodSecurity meets the "restricted" Pod Security Standard.
func restrictedPodSecurity(uid int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To(uid),
		RunAsGroup:     ptr.To(uid),
		FSGroup:        ptr.To(uid),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func restrictedContainerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// npuPodSecurity runs the NPU encoder as root: the XDNA device node is root-only (0600) unless a
// udev rule on the node says otherwise, and a capability added to a non-root container is not in
// its effective set (no ambient capabilities), so XRT could neither open the device nor pin memory.
func npuPodSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(false),
		RunAsUser:      ptr.To(int64(0)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// npuContainerSecurity drops every capability but IPC_LOCK: XRT pins 64 MB per process and says
// "No devices" without it.
func npuContainerSecurity() *corev1.SecurityContext {
	sc := restrictedContainerSecurity()
	sc.Capabilities.Add = []corev1.Capability{"IPC_LOCK"}
	return sc
}

// reconcileWorkload applies the Deployment, Service, disruption budget and autoscaler for staged weights, and reads
// the encoder pods for status.
func (r *Reconciler) reconcileWorkload(ctx context.Context, we *whisperv1.WhisperEncoder, weights report.StageResult) (workloadView, error) {
	var v workloadView
	prev, err := getOptional(ctx, r.Client, we.Namespace, we.Name, &appsv1.Deployment{})
	if err != nil {
		return v, err
	}
	if err := r.applyNPUClaimTemplate(ctx, we); meta.IsNoMatchError(err) {
		// Pods naming a claim template would be refused, or stripped of their claim by an API
		// server without DRA and run without the NPU: make none, say why.
		v.DRAUnavailable = fmt.Sprintf("spec.npu.allocation dra: the cluster does not serve %s ResourceClaimTemplates "+
			"(Kubernetes >= 1.34 with resource.k8s.io/v1 on); use allocation devicePlugin here", resourcev1.SchemeGroupVersion)
		return v, nil
	} else if err != nil {
		return v, err
	}
	deploy, err := apply(ctx, r.Client, encoderDeployment(we, weights, r.Config), keepAutoscaledReplicas)
	if err != nil {
		return v, err
	}
	v.Deployment = deploy
	if err := r.pruneNPUClaimTemplates(ctx, we, prev, deploy); err != nil {
		return v, err
	}
	if v.Service, err = apply(ctx, r.Client, encoderService(we), keepServiceAllocations); err != nil {
		return v, err
	}
	if _, err := apply(ctx, r.Client, encoderDisruptionBudget(we), nil); err != nil {
		return v, err
	}
	if err := r.reconcileAutoscaler(ctx, we, weights.Caps()); err != nil {
		return v, err
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(we.Namespace), client.MatchingLabels(selectorLabels(we))); err != nil {
		return v, fmt.Errorf("list encoder pods of %s/%s: %w", we.Namespace, we.Name, err)
	}
	v.Pods = pods.Items
	v.MissingSecrets = r.missingServingSecrets(ctx, we.Namespace)
	return v, nil
}

// deleteAutoscaler removes the autoscaler we owned once spec.autoscaling is unset.
func (r *Reconciler) deleteAutoscaler(ctx context.Context, we *whisperv1.WhisperEncoder) error {
	hpa, err := getOptional(ctx, r.Client, we.Namespace, we.Name, &autoscalingv2.HorizontalPodAutoscaler{})
	if err != nil || hpa == nil || !metav1.IsControlledBy(hpa, we) {
		return err
	}
	if err := r.Client.Delete(ctx, hpa); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete HorizontalPodAutoscaler %s/%s: %w", hpa.Namespace, hpa.Name, err)
	}
	return nil
}

// keepServiceAllocations keeps what the API server allocated (cluster IPs, families), for when
// apply has to replace the Service.
func keepServiceAllocations(existing, desired *corev1.Service) {
	desired.Spec.ClusterIP = existing.Spec.ClusterIP
	desired.Spec.ClusterIPs = existing.Spec.ClusterIPs
	desired.Spec.IPFamilies = existing.Spec.IPFamilies
	desired.Spec.IPFamilyPolicy = existing.Spec.IPFamilyPolicy
	desired.Spec.InternalTrafficPolicy = existing.Spec.InternalTrafficPolicy
	desired.Spec.SessionAffinity = existing.Spec.SessionAffinity
}

// keepAutoscaledReplicas leaves the replica count to the autoscaler when the operator sets none:
// applying the live count keeps it (omitting a field the operator applied before would reset it).
func keepAutoscaledReplicas(existing, desired *appsv1.Deployment) {
	if desired.Spec.Replicas == nil {
		desired.Spec.Replicas = existing.Spec.Replicas
	}
}
