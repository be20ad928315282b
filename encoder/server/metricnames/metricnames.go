// Package metricnames holds the names of the encoder server's Prometheus
// metrics that other components read — the operator's HorizontalPodAutoscaler
// scales on them — defined once for both sides. It imports nothing, so the
// operator does not link the server.
package metricnames

// Namespace prefixes every metric of the encoder server.
const Namespace = "whisper_encoder"

const (
	// QueueDepth is the windows admitted and not yet computing (front end
	// or queued for the encoder): the signal autoscaling uses.
	QueueDepth = Namespace + "_queue_depth"
	// QueueCapacity is the queue depth at which requests are refused.
	QueueCapacity = Namespace + "_queue_capacity"
	// DecodeQueueDepth is the transcription windows waiting for decode
	// memory or being decoded (the Transcriber's DecodeQueueDepth): the
	// second autoscaling signal of a model that transcribes.
	DecodeQueueDepth = Namespace + "_decode_queue_depth"
)
