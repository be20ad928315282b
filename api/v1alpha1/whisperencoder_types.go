package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Precision is the numeric format the staged weights are stored and served in.
// +kubebuilder:validation:Enum=bf16
type Precision string

// PrecisionBF16 is bfloat16, converted from the source with round-to-nearest-even.
const PrecisionBF16 Precision = "bf16"

// Backend is where the encoder math runs.
// +kubebuilder:validation:Enum=auto;npu;cpu
type Backend string

const (
	// BackendAuto runs the encoder on the best backend the encoder has. The encoder has no NPU
	// backend yet, so today auto is the CPU backend: pods request no device and run as with cpu.
	BackendAuto Backend = "auto"
	// BackendNPU runs the encoder on an XDNA NPU requested from the device plugin. The encoder
	// has no NPU backend yet: its pods exit, and the WhisperEncoder reports NPUUnavailable.
	BackendNPU Backend = "npu"
	// BackendCPU runs the encoder on CPU; pods request no device.
	BackendCPU Backend = "cpu"
)

// Phase is a one-word summary of where a WhisperEncoder is in its life.
// +kubebuilder:validation:Enum=Pending;Staging;Deploying;Ready;Failed
type Phase string

const (
	// PhasePending waits for something outside the operator: the cache claim, or the staging pod to start.
	PhasePending Phase = "Pending"
	// PhaseStaging is downloading and converting the weights.
	PhaseStaging Phase = "Staging"
	// PhaseDeploying has staged weights and waits for encoder pods to become ready.
	PhaseDeploying Phase = "Deploying"
	// PhaseReady serves with every desired replica ready.
	PhaseReady Phase = "Ready"
	// PhaseFailed needs a human: staging failed, or the encoder container keeps failing.
	PhaseFailed Phase = "Failed"
)

// Condition types of a WhisperEncoder.
const (
	// ConditionWeightsStaged is True once the source's weights are in the cache.
	ConditionWeightsStaged = "WeightsStaged"
	// ConditionAvailable is True while at least one encoder replica is ready to serve.
	ConditionAvailable = "Available"
	// ConditionReady is True when weights are staged and every desired replica is updated and ready.
	ConditionReady = "Ready"
)

// Condition reasons of a WhisperEncoder. Messages carry the details for humans.
const (
	// ReasonStaged: the weights are in the cache (WeightsStaged=True).
	ReasonStaged = "Staged"
	// ReasonCacheClaimMissing: the namespace has no cache PersistentVolumeClaim of the configured name.
	ReasonCacheClaimMissing = "CacheClaimMissing"
	// ReasonStagingPending: the staging Job exists but its pod is not running yet.
	ReasonStagingPending = "StagingPending"
	// ReasonStaging: the staging pod is running.
	ReasonStaging = "Staging"
	// ReasonStagingFailed: the staging Job failed; the message is the stager's own.
	ReasonStagingFailed = "StagingFailed"
	// ReasonImageNotAllowed: spec.image is not in the operator's image allow list; nothing runs.
	ReasonImageNotAllowed = "ImageNotAllowed"

	// ReasonWaitingForWeights: no encoder pods run before the weights are staged.
	ReasonWaitingForWeights = "WaitingForWeights"
	// ReasonMinimumReplicasAvailable: at least one encoder replica is ready (Available=True).
	ReasonMinimumReplicasAvailable = "MinimumReplicasAvailable"
	// ReasonScaledToZero: zero replicas were asked for.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonReplicasUnavailable: encoder pods are starting or not ready yet.
	ReasonReplicasUnavailable = "ReplicasUnavailable"
	// ReasonUnschedulable: the scheduler cannot place an encoder pod (for example no free NPU).
	ReasonUnschedulable = "Unschedulable"
	// ReasonNPUUnavailable: the encoder exited because it found no usable NPU; the message is its termination message.
	ReasonNPUUnavailable = "NPUUnavailable"
	// ReasonEncoderFailing: the encoder container exited with an error; the message is its termination message.
	ReasonEncoderFailing = "EncoderFailing"
	// ReasonServingSecretMissing: a Secret the operator mounts into every encoder pod (its TLS
	// certificate or bearer tokens) does not exist in the namespace, so no pod can start.
	ReasonServingSecretMissing = "ServingSecretMissing"
	// ReasonDRAUnavailable: spec.npu.allocation is dra but the cluster does not serve
	// resource.k8s.io/v1 ResourceClaimTemplates (Kubernetes < 1.34, or the API turned off); no
	// encoder pods are made, and the operator looks again every minute.
	ReasonDRAUnavailable = "DRAUnavailable"

	// ReasonReady: staged, available and every desired replica updated and ready (Ready=True).
	ReasonReady = "Ready"
	// ReasonRollingOut: available, but the rollout to the desired replicas has not finished.
	ReasonRollingOut = "RollingOut"
	// ReasonNotAvailable: weights staged but no replica is available.
	ReasonNotAvailable = "NotAvailable"
)

// Well-known annotations and labels.
const (
	// AnnotationRetryStaging, set on a WhisperEncoder to any new value, retries a failed
	// staging Job at once instead of waiting for the automatic backoff.
	AnnotationRetryStaging = "whisper.xdna.io/retry-staging"
)

// WhisperEncoderSpec is what the user asks for: which model, how to run it, how many.
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(oldSelf.replicas) || self.replicas == oldSelf.replicas",message="spec.replicas cannot change while spec.autoscaling is set: the HorizontalPodAutoscaler drives the replica count (remove spec.autoscaling first)"
type WhisperEncoderSpec struct {
	// Model says where the model comes from: an encoder ONNX file (the pods encode) or a whole
	// Whisper model in Hugging Face's layout (the pods also transcribe).
	// +required
	Model ModelSpec `json:"model"`

	// Transcription holds the defaults of the pods' transcription API, used where a request
	// leaves them unset. They apply when the staged model can transcribe (status.capabilities).
	// +optional
	// +kubebuilder:default={}
	Transcription TranscriptionSpec `json:"transcription,omitempty"`

	// Precision of the staged weights.
	// +optional
	// +kubebuilder:default=bf16
	Precision Precision `json:"precision,omitempty"`

	// Backend: auto (default) is the best backend the encoder has, today the CPU (no device
	// request); npu requests spec.npu's device and fails with NPUUnavailable until the encoder
	// has an NPU backend; cpu runs on CPU (no device request).
	// +optional
	// +kubebuilder:default=auto
	Backend Backend `json:"backend,omitempty"`

	// NPU is the device request used when backend is npu (auto requests no device today): the
	// device plugin's extended resource or, with allocation dra, a DRA ResourceClaim.
	// +optional
	// +kubebuilder:default={}
	NPU NPUSpec `json:"npu,omitempty"`

	// Replicas is the number of encoder pods when autoscaling is not set. It is the scale
	// subresource's spec path, so `kubectl scale`, KEDA or an external HorizontalPodAutoscaler
	// can drive it. With spec.autoscaling set it is ignored and cannot be changed (one driver
	// at a time): the operator's HorizontalPodAutoscaler scales the encoder Deployment.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling makes the encoder Deployment scale on its queue depth: the operator creates an
	// autoscaling/v2 HorizontalPodAutoscaler on the queue-depth pods metric (a metrics adapter
	// must expose it) or, run with --autoscaler=keda, a KEDA ScaledObject with a Prometheus
	// trigger on the summed queue depth.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Serving tunes the encoder server.
	// +optional
	// +kubebuilder:default={}
	Serving ServingSpec `json:"serving,omitempty"`

	// Image of whisper-encoder for the staging Job and the encoder pods; unset means the
	// operator's default (flag --encoder-image).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`

	// Resources of the encoder container. Where it sets neither request nor limit, CPU gets a
	// request of 1 and memory a request of 256Mi and a limit of 1Gi, both plus the staged weights'
	// size (a memory request alone gets that limit, raised to the request). With backend npu the
	// device request is added to it.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// NodeSelector for encoder pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations for encoder pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Affinity for encoder pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// PriorityClassName for encoder pods.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// ModelSpec names the model's source and the credentials to fetch it.
type ModelSpec struct {
	// Source of the model. Immutable: a different model is a different WhisperEncoder.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.model.source is immutable: create a new WhisperEncoder to serve another model"
	Source ModelSource `json:"source"`

	// CredentialsSecret names a Secret in the WhisperEncoder's namespace whose key (HF_TOKEN
	// by default) the stager sends as a bearer token to Hugging Face.
	// +optional
	CredentialsSecret *SecretKeyReference `json:"credentialsSecret,omitempty"`
}

// ModelSource is exactly one of a URL or a file on a PersistentVolumeClaim.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.pvc)",message="exactly one of url or pvc must be set"
type ModelSource struct {
	// URL of an encoder ONNX file (http://, https://, or hf://ORG/REPO/PATH[@REV] for Hugging
	// Face), or of a whole model repository on Hugging Face: hf://ORG/REPO[@REV] (config.json,
	// model.safetensors or its shards — or, without them, the onnx-community layout
	// onnx/encoder_model.onnx with onnx/decoder_model_merged.onnx or decoder_model.onnx —,
	// tokenizer and generation files).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/]+.*$') || self.matches('^hf://[^/@]+/[^/@]+(/[^@]+)?(@[^@/]+)?$')",message="url must be http(s)://HOST/..., hf://ORG/REPO/PATH[@REV] or hf://ORG/REPO[@REV]"
	URL string `json:"url,omitempty"`

	// PVC is an encoder ONNX file, or a directory holding a whole model in Hugging Face's
	// layout, on a PersistentVolumeClaim in the WhisperEncoder's namespace.
	// +optional
	PVC *PVCSource `json:"pvc,omitempty"`

	// SHA256 of the source file (64 lowercase hex digits); staging fails on a mismatch. Only for
	// single-file (ONNX) sources: a whole model's content key covers all its files.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	SHA256 string `json:"sha256,omitempty"`
}

// PVCSource is a file on a PersistentVolumeClaim, mounted read-only by the staging Job.
type PVCSource struct {
	// ClaimName of the PersistentVolumeClaim.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`

	// Path of the ONNX file (or model directory) inside the volume, relative to its root.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="path must be relative to the volume root and must not contain '..'"
	Path string `json:"path"`
}

// SecretKeyReference is a key of a Secret in the same namespace.
type SecretKeyReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the Secret holding the token.
	// +optional
	// +kubebuilder:default=HF_TOKEN
	Key string `json:"key,omitempty"`
}

// NPUAllocation says how an encoder pod gets its NPU.
// +kubebuilder:validation:Enum=devicePlugin;dra
type NPUAllocation string

const (
	// NPUAllocationDevicePlugin requests resourceName, the extended resource the device plugin
	// advertises, as a container limit.
	NPUAllocationDevicePlugin NPUAllocation = "devicePlugin"
	// NPUAllocationDRA gives each encoder pod a ResourceClaim (Dynamic Resource Allocation) from a
	// ResourceClaimTemplate the operator creates: count NPUs of the DeviceClass npu.amd.com with
	// contexts hardware contexts each, served by xdna-dra-driver.
	NPUAllocationDRA NPUAllocation = "dra"
)

// NPUSpec is how an encoder pod asks for its NPU when backend is npu: the device plugin's
// extended resource, or a DRA claim.
type NPUSpec struct {
	// Allocation: devicePlugin (an amd.com/npu limit) or dra (a ResourceClaim of the DeviceClass
	// npu.amd.com; Kubernetes >= 1.34, sharing an NPU by contexts >= 1.36, and the chart's
	// draDriver on the NPU nodes).
	// +optional
	// +kubebuilder:default=devicePlugin
	Allocation NPUAllocation `json:"allocation,omitempty"`

	// Contexts is how many of each claimed NPU's hardware contexts a pod asks for with allocation
	// dra (capacity contexts of npu.amd.com; Phoenix has 6, so 2 lets three pods share one NPU).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	Contexts int32 `json:"contexts,omitempty"`

	// Selector is a CEL expression the claimed NPU must satisfy with allocation dra, for example
	// device.attributes["npu.amd.com"].firmwareVersion == "1.5.2.380".
	// +optional
	// +kubebuilder:validation:MaxLength=10240
	Selector string `json:"selector,omitempty"`

	// ResourceName advertised by the device plugin (allocation devicePlugin).
	// +optional
	// +kubebuilder:default="amd.com/npu"
	// +kubebuilder:validation:MaxLength=253
	ResourceName string `json:"resourceName,omitempty"`

	// Count of NPUs per pod.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	Count int32 `json:"count,omitempty"`
}

// AutoscalingSpec bounds the autoscaling/v2 HorizontalPodAutoscaler (made by the operator, or by
// KEDA from the operator's ScaledObject) that scales the encoder on its queue depth.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"
type AutoscalingSpec struct {
	// MinReplicas is the floor of the replica count.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the ceiling of the replica count.
	// +required
	// +kubebuilder:validation:Minimum=1
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetQueueDepth is the average number of queued requests per pod the autoscaler aims for.
	// +optional
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	TargetQueueDepth int32 `json:"targetQueueDepth,omitempty"`

	// ScaleDownStabilizationSeconds is how long the queue must have asked for fewer pods before
	// the autoscaler removes any (the HorizontalPodAutoscaler's scaleDown stabilization window):
	// short bursts do not make it drop pods it needs again seconds later. Scaling up is immediate.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	ScaleDownStabilizationSeconds *int32 `json:"scaleDownStabilizationSeconds,omitempty"`
}

// ServingSpec tunes `whisper-encoder serve`.
// +kubebuilder:validation:XValidation:rule="!has(self.httpPort) || !has(self.grpcPort) || self.httpPort != self.grpcPort",message="serving.httpPort and serving.grpcPort must differ"
type ServingSpec struct {
	// MaxBatch is the largest batch of 30 s windows the server encodes at once.
	// +optional
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	MaxBatch int32 `json:"maxBatch,omitempty"`

	// MaxQueue is how many requests may wait; beyond it the server answers 429 / RESOURCE_EXHAUSTED.
	// +optional
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	MaxQueue int32 `json:"maxQueue,omitempty"`

	// HTTPPort serves /v1/encode, /healthz, /readyz and /metrics.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	HTTPPort int32 `json:"httpPort,omitempty"`

	// GRPCPort serves the gRPC encoder API.
	// +optional
	// +kubebuilder:default=9090
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	GRPCPort int32 `json:"grpcPort,omitempty"`
}

// Task is what a transcription request does with speech.
// +kubebuilder:validation:Enum=transcribe;translate
type Task string

// Tasks of the transcription API.
const (
	// TaskTranscribe writes the speech down in its own language.
	TaskTranscribe Task = "transcribe"
	// TaskTranslate writes it down in English (multilingual models only).
	TaskTranslate Task = "translate"
)

// DecoderWeights is the precision the decoder's step-time weights are held in.
// +kubebuilder:validation:Enum=bf16;int8
type DecoderWeights string

const (
	// DecoderWeightsBF16 keeps the staged BF16 weights as they are.
	DecoderWeightsBF16 DecoderWeights = "bf16"
	// DecoderWeightsInt8 quantises them at load, one power-of-two scale per output row.
	DecoderWeightsInt8 DecoderWeights = "int8"
)

// TranscriptionSpec holds the defaults of the encoder pods' transcription API (passed to
// `whisper-encoder serve` as --default-language, --default-task, --default-beam-size and
// --default-word-timestamps; a request's own values win) and the decoder's weight precision
// (--decoder-weights).
type TranscriptionSpec struct {
	// Language of the speech as an ISO 639-1 code (en, de, …; Whisper's codes); unset means
	// detect it per 30 s window.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z]{2,3}$`
	Language string `json:"language,omitempty"`

	// Task: transcribe (default) or translate (into English; multilingual models only).
	// +optional
	// +kubebuilder:default=transcribe
	Task Task `json:"task,omitempty"`

	// BeamSize of the beam search; 1 (default) is greedy decoding.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	BeamSize int32 `json:"beamSize,omitempty"`

	// WordTimestamps adds word-level timestamps to responses by default.
	// +optional
	WordTimestamps bool `json:"wordTimestamps,omitempty"`

	// DecoderWeights: bf16 (default) decodes with the staged weights as they are; int8
	// quantises the decoder's per-token matrices at load (one power-of-two scale per output
	// row): a decode step streams about half the bytes, so small batches run faster, at a
	// small cost in accuracy (see the README's Decoder section).
	// +optional
	// +kubebuilder:default=bf16
	DecoderWeights DecoderWeights `json:"decoderWeights,omitempty"`
}

// CapabilitiesStatus is what the staged model lets the encoder pods do.
type CapabilitiesStatus struct {
	// Encode: audio or log-mel in, encoder hidden states out (every model).
	Encode bool `json:"encode"`
	// Transcribe: audio in, text out (whole models with a decoder and a tokenizer).
	Transcribe bool `json:"transcribe"`
	// Translate: audio in, English text out (multilingual whole models).
	Translate bool `json:"translate"`
	// Languages the model transcribes (ISO 639-1 codes; [en] for English-only models).
	// +optional
	// +listType=atomic
	Languages []string `json:"languages,omitempty"`
	// Summary lists the tasks, comma-separated ("encode,transcribe,translate"), for display.
	Summary string `json:"summary"`
}

// WhisperEncoderStatus is what the operator observed.
type WhisperEncoderStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase summarizes the conditions in one word.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Conditions: WeightsStaged, Available and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Weights describes the staged weights once staging succeeded.
	// +optional
	Weights *WeightsStatus `json:"weights,omitempty"`

	// Capabilities is what the encoder pods can do with the staged model, once staged.
	// +optional
	Capabilities *CapabilitiesStatus `json:"capabilities,omitempty"`

	// Staging describes the staging Job while it exists.
	// +optional
	Staging *StagingStatus `json:"staging,omitempty"`

	// Replicas is the number of encoder pods (the scale subresource's status path).
	// +optional
	Replicas int32 `json:"replicas"`

	// ReadyReplicas is the number of ready encoder pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// ReadySummary is "readyReplicas/replicas", for display.
	// +optional
	ReadySummary string `json:"readySummary,omitempty"`

	// Selector is the label selector of the encoder pods (the scale subresource's selector path).
	// +optional
	Selector string `json:"selector,omitempty"`

	// Endpoint is where clients reach the encoder.
	// +optional
	Endpoint *EndpointStatus `json:"endpoint,omitempty"`
}

// WeightsStatus is the stager's result for this source.
type WeightsStatus struct {
	// Key of the staged directory in the cache (content address of source bytes, precision and format).
	Key string `json:"key"`
	// ShortKey is the first 12 characters of Key, for display.
	ShortKey string `json:"shortKey"`
	// SourceSHA256 of the source file.
	SourceSHA256 string `json:"sourceSHA256"`
	// SourcePrecision of the source tensors (for example fp32, fp16, int8, q4); lossy sources are reported as such.
	SourcePrecision string `json:"sourcePrecision"`
	// SizeBytes of the staged weights.
	SizeBytes int64 `json:"sizeBytes"`
	// StagedAt is when the stager finished.
	// +optional
	StagedAt *metav1.Time `json:"stagedAt,omitempty"`
}

// StagingStatus follows the staging Job. The counters are always present: 0 means none yet (or
// unknown total). Live counters need the operator's --stager-service-account (the stager then
// reports them on its own pod); without it they stay 0 until the weights are staged.
type StagingStatus struct {
	// Job is the name of the staging Job (shared by every WhisperEncoder of the namespace with this source).
	Job string `json:"job"`
	// Attempt counts staging Jobs run for this source since the last success.
	Attempt int32 `json:"attempt"`
	// Phase of the stager reporting the counters (download, hash or convert); empty before its first report.
	// +optional
	Phase string `json:"phase,omitempty"`
	// BytesDone of the source read so far.
	BytesDone int64 `json:"bytesDone"`
	// BytesTotal of the source; 0 while unknown.
	BytesTotal int64 `json:"bytesTotal"`
	// StartedAt is when the Job started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// RetryAt is when a failed staging is retried automatically.
	// +optional
	RetryAt *metav1.Time `json:"retryAt,omitempty"`
}

// EndpointStatus is the encoder Service's address.
type EndpointStatus struct {
	// Service name.
	Service string `json:"service"`
	// Host is the Service's cluster DNS name.
	Host string `json:"host"`
	// HTTPPort serves /v1/encode and /metrics.
	HTTPPort int32 `json:"httpPort"`
	// GRPCPort serves the gRPC API.
	GRPCPort int32 `json:"grpcPort"`
}

// WhisperEncoder stages a Whisper encoder's weights once into a shared cache and serves
// them from encoder pods on NPUs (or CPUs).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=we,categories=whisper
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.readySummary`
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.spec.backend`
// +kubebuilder:printcolumn:name="Tasks",type=string,JSONPath=`.status.capabilities.summary`
// +kubebuilder:printcolumn:name="Weights",type=string,JSONPath=`.status.weights.shortKey`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63",message="metadata.name must be a DNS-1035 label (at most 63 characters, lowercase letters, digits and '-', starting with a letter): it names the encoder Service"
type WhisperEncoder struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec WhisperEncoderSpec `json:"spec"`
	// +optional
	Status WhisperEncoderStatus `json:"status,omitempty"`
}

// WhisperEncoderList is a list of WhisperEncoders.
//
// +kubebuilder:object:root=true
type WhisperEncoderList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the WhisperEncoders.
	Items []WhisperEncoder `json:"items"`
}
