package v1alpha1

// The defaults of a WhisperEncoderSpec, defined once. The +kubebuilder:default markers on the
// fields say the same to the API server (markers cannot name Go constants: TestCRDDefaults
// compares the generated CRD's defaults with Defaulted).
const (
	// DefaultPrecision of the staged weights.
	DefaultPrecision = PrecisionBF16
	// DefaultBackend of the encoder.
	DefaultBackend = BackendAuto
	// DefaultReplicas of the encoder Deployment without autoscaling.
	DefaultReplicas int32 = 1
	// DefaultNPUResourceName is the extended resource the device plugin advertises.
	DefaultNPUResourceName = "amd.com/npu"
	// DefaultNPUCount of devices per encoder pod.
	DefaultNPUCount int32 = 1
	// DefaultNPUAllocation is how an encoder pod gets its NPU.
	DefaultNPUAllocation = NPUAllocationDevicePlugin
	// DefaultNPUContexts of each NPU a pod claims with allocation dra.
	DefaultNPUContexts int32 = 1
	// DefaultMaxBatch of 30 s windows encoded at once.
	DefaultMaxBatch int32 = 8
	// DefaultMaxQueue of waiting requests.
	DefaultMaxQueue int32 = 64
	// DefaultHTTPPort of the encoder server.
	DefaultHTTPPort int32 = 8080
	// DefaultGRPCPort of the encoder server.
	DefaultGRPCPort int32 = 9090
	// DefaultCredentialsKey is the key of spec.model.credentialsSecret holding the token.
	DefaultCredentialsKey = "HF_TOKEN"
	// DefaultMinReplicas of the autoscaler.
	DefaultMinReplicas int32 = 1
	// DefaultTargetQueueDepth per pod the autoscaler aims for.
	DefaultTargetQueueDepth int32 = 4
	// DefaultScaleDownStabilizationSeconds is the autoscaler's scale-down stabilization window.
	DefaultScaleDownStabilizationSeconds int32 = 300
	// DefaultTask of the transcription API.
	DefaultTask = TaskTranscribe
	// DefaultBeamSize of the transcription API: greedy decoding.
	DefaultBeamSize int32 = 1
	// DefaultDecoderWeights keeps the decoder's staged BF16 weights.
	DefaultDecoderWeights = DecoderWeightsBF16
)

// Defaulted returns a copy of s with every unset field that has an API default set to it, as the
// API server does on admission. The operator builds from it, so that objects the API server did
// not default (unit tests, clients that bypass the CRD schema) get the same pods.
func (s *WhisperEncoderSpec) Defaulted() WhisperEncoderSpec {
	d := *s.DeepCopy()
	setDefault(&d.Precision, DefaultPrecision)
	setDefault(&d.Backend, DefaultBackend)
	if d.Replicas == nil {
		r := DefaultReplicas
		d.Replicas = &r
	}
	setDefault(&d.NPU.ResourceName, DefaultNPUResourceName)
	setDefault(&d.NPU.Count, DefaultNPUCount)
	setDefault(&d.NPU.Allocation, DefaultNPUAllocation)
	setDefault(&d.NPU.Contexts, DefaultNPUContexts)
	setDefault(&d.Serving.MaxBatch, DefaultMaxBatch)
	setDefault(&d.Serving.MaxQueue, DefaultMaxQueue)
	setDefault(&d.Serving.HTTPPort, DefaultHTTPPort)
	setDefault(&d.Serving.GRPCPort, DefaultGRPCPort)
	setDefault(&d.Transcription.Task, DefaultTask)
	setDefault(&d.Transcription.BeamSize, DefaultBeamSize)
	setDefault(&d.Transcription.DecoderWeights, DefaultDecoderWeights)
	if c := d.Model.CredentialsSecret; c != nil {
		setDefault(&c.Key, DefaultCredentialsKey)
	}
	if a := d.Autoscaling; a != nil {
		setDefault(&a.MinReplicas, DefaultMinReplicas)
		setDefault(&a.TargetQueueDepth, DefaultTargetQueueDepth)
		if a.ScaleDownStabilizationSeconds == nil {
			w := DefaultScaleDownStabilizationSeconds
			a.ScaleDownStabilizationSeconds = &w
		}
	}
	return d
}

// setDefault sets *field to def when it holds its zero value.
func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
