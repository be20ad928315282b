package server

// What the server's peak resident memory is made of, besides the budgets
// (see MemoryBound).
const (
	// RuntimeAllowance covers the Go runtime, the binary, goroutine stacks,
	// metrics, logs and the encoder's workspaces (a few MB for whisper-base,
	// ~25 MB for large-v3).
	RuntimeAllowance = 128 << 20
	// ConnAllowance covers one open connection's buffers and goroutines
	// (HTTP/1.1: ~20 KB; gRPC over HTTP/2: read and write buffers, ~150 KB).
	ConnAllowance = 256 << 10
)

// MemoryBound is the most resident memory the server takes for any mix of
// requests, given modelBytes, the model's memory outside the Go heap (the
// packed weights; count them twice to cover loading, when the staged file is
// mapped beside them). heap is the part the Go runtime manages, which serve
// sets as the runtime's soft memory limit so garbage is collected before it
// could push the total past the bound:
//
//	heap  = RuntimeAllowance + MaxConnections·ConnAllowance
//	      + 2·UploadBudget   (a gRPC message is held twice while it is unmarshalled,
//	                     a chunked HTTP body while its buffer grows)
//	      + DecodeBudget     (decoded audio, log-mel windows, hidden states of admitted requests)
//	      + 2·MaxBatch·(log-mel + hidden states of one window)   (the batch's input and output)
//	bound = modelBytes + heap
//
// A transcription's decoded audio and current window are in DecodeBudget; the
// Transcriber's decoder state (cross-attention K/V, self-attention caches)
// is not counted here: the Transcriber bounds it by its own budget
// (transcribe.Config.DecodeMemory), which serve adds to the bound.
//
// Every term is fixed by the options before any request arrives: bodies are
// reserved in the upload budget before they are read and requests in the
// decode budget before they are decoded, and what does not fit is refused.
func MemoryBound(o Options, info Info, modelBytes int64) (bound, heap int64) {
	window := int64(4 * (info.NMels*info.InputFrames + info.Positions*info.DModel))
	heap = RuntimeAllowance + int64(o.MaxConnections)*ConnAllowance +
		2*o.UploadBudget + o.DecodeBudget + 2*int64(o.MaxBatch)*window
	return modelBytes + heap, heap
}
