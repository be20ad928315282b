// Package report is the contract between the whisper-encoder processes the operator runs and the
// operator that reads what they leave behind:
//
//   - the stager's result (StageResult), written by `whisper-encoder stage --result-file` to the
//     staging container's termination message and kept by the operator in its weights record;
//   - the stager's progress (Progress), an annotation (ProgressAnnotation) on its own pod;
//   - the encoder server's termination message (Termination), written when `whisper-encoder
//     serve` exits with an error.
//
// Failures carry a machine-readable Code; the operator decides on codes, never on message text
// (messages are for humans). The package is a leaf: it imports nothing of this repository.
package report

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// MaxMessageBytes bounds what a process writes to its termination message: Kubernetes keeps at
// most 4096 bytes of it, and the operator must read valid JSON.
const MaxMessageBytes = 4000

// Code is a machine-readable failure reason. The empty Code means success.
type Code string

// Codes of the stager's result.
const (
	// CodeStagingFailed: the stager ran and failed (download, checksum, conversion); Error says why.
	CodeStagingFailed Code = "StagingFailed"
)

// Codes of the encoder server's termination message.
const (
	// CodeNPUUnavailable: the NPU backend was asked for and cannot run (not built, or no usable
	// device); the encoder exits instead of falling back to the CPU silently.
	CodeNPUUnavailable Code = "NPUUnavailable"
	// CodeModelLoadFailed: the staged weights could not be loaded.
	CodeModelLoadFailed Code = "ModelLoadFailed"
	// CodeEncoderFailed: any other fatal error of the encoder server.
	CodeEncoderFailed Code = "EncoderFailed"
)

// Codes a reader assigns when a process left no usable message (both contracts).
const (
	// CodeNoMessage: the termination message is empty (the process was killed, or crashed
	// before writing it).
	CodeNoMessage Code = "NoMessage"
	// CodeUnreadable: the message is not this contract's JSON (for example the log tail the
	// kubelet keeps after a crash), or a success result lacks what a success needs.
	CodeUnreadable Code = "Unreadable"
)

// Error is an error carrying the Code a process reports when it ends with it.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// WithCode marks err with code (nil stays nil).
func WithCode(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// CodeOf is the Code of the outermost *Error in err's chain, or fallback when there is none.
func CodeOf(err error, fallback Code) Code {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return fallback
}

// StageResult is the JSON the stager writes to its result file: either the staged weights, or
// Reason and Error.
type StageResult struct {
	// Key is the staged directory's name in the cache (a content address).
	Key string `json:"key,omitempty"`
	// Dir is the staged directory as the stager saw it (under its cache mount).
	Dir string `json:"dir,omitempty"`
	// SourceSHA256 of the source bytes.
	SourceSHA256 string `json:"sourceSHA256,omitempty"`
	// SourcePrecision of the source tensors (fp32, fp16, int8, q4, …).
	SourcePrecision string `json:"sourcePrecision,omitempty"`
	// SizeBytes of the staged weights.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// StagedAt is when the weights were staged.
	StagedAt time.Time `json:"stagedAt,omitzero"`
	// Existing is true when the weights were already in the cache.
	Existing bool `json:"existing,omitempty"`
	// Capabilities is what the staged weights can serve; nil from stagers that predate whole
	// models (their weights encode only: see Caps).
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	// Reason is set, with Error, when staging failed.
	Reason Code `json:"reason,omitempty"`
	// Error is the human-readable failure, when staging failed.
	Error string `json:"error,omitempty"`
}

// Capabilities is what staged weights can serve: every entry encodes; a whole model (encoder,
// decoder and tokenizer) transcribes, and translates when multilingual, in Languages (ISO 639-1
// codes; ["en"] for English-only models).
type Capabilities struct {
	Encode     bool     `json:"encode"`
	Transcribe bool     `json:"transcribe"`
	Translate  bool     `json:"translate"`
	Languages  []string `json:"languages,omitempty"`
}

// Tasks lists the capabilities as words, in the order encode, transcribe, translate.
func (c Capabilities) Tasks() []string {
	var out []string
	if c.Encode {
		out = append(out, "encode")
	}
	if c.Transcribe {
		out = append(out, "transcribe")
	}
	if c.Translate {
		out = append(out, "translate")
	}
	return out
}

// Caps is r's Capabilities, or encode only when the stager reported none.
func (r StageResult) Caps() Capabilities {
	if r.Capabilities == nil {
		return Capabilities{Encode: true}
	}
	return *r.Capabilities
}

// Failed reports whether r describes a failure.
func (r StageResult) Failed() bool { return r.Reason != "" || r.Error != "" }

// FailedStage is the result of a staging that failed with err (its Code, or CodeStagingFailed);
// any URL in the message is redacted (redact.Text).
func FailedStage(err error) StageResult {
	return StageResult{Reason: CodeOf(err, CodeStagingFailed), Error: redact.Text(err.Error())}
}

// Marshal is r as JSON of at most MaxMessageBytes (a too long Error is cut).
func (r StageResult) Marshal() []byte {
	return fit(r.Error, func(text string) any { r.Error = text; return r })
}

// ParseStageResult reads a stager result. An empty message, one that is not the result's JSON, or
// a success without a usable Key becomes a failure with CodeNoMessage or CodeUnreadable. A failure
// without a Reason (an older stager) gets CodeStagingFailed.
func ParseStageResult(msg string) StageResult {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return StageResult{Reason: CodeNoMessage, Error: "the stager left no result"}
	}
	var r StageResult
	if err := json.Unmarshal([]byte(msg), &r); err != nil {
		return StageResult{Reason: CodeUnreadable, Error: msg}
	}
	switch {
	case r.Error != "" && r.Reason == "":
		r.Reason = CodeStagingFailed
	case r.Failed():
	case r.Key == "":
		return StageResult{Reason: CodeUnreadable, Error: "stager result: no key"}
	case strings.ContainsAny(r.Key, `/\`) || r.Key == "." || r.Key == "..":
		return StageResult{Reason: CodeUnreadable, Error: `stager result: key "` + r.Key + `" is not a single directory name`}
	}
	return r
}

// ProgressAnnotation is the pod annotation holding the stager's latest Progress as JSON.
const ProgressAnnotation = "whisper.xdna.io/progress"

// maxPhase bounds Progress.Phase (phases are short words: download, hash, convert).
const maxPhase = 32

// Progress is one progress report: bytes done of a total (0 = unknown) in a named phase.
type Progress struct {
	Phase      string `json:"phase"`
	BytesDone  int64  `json:"bytesDone"`
	BytesTotal int64  `json:"bytesTotal"`
}

// Marshal is p as the annotation's value.
func (p Progress) Marshal() string {
	b, _ := json.Marshal(p) // plain struct: always marshals
	return string(b)
}

// ParseProgress reads a ProgressAnnotation value; ok is false when it is absent or malformed
// (negative counters, a phase longer than 32 bytes).
func ParseProgress(value string) (p Progress, ok bool) {
	if value == "" || json.Unmarshal([]byte(value), &p) != nil || p.BytesDone < 0 || p.BytesTotal < 0 || len(p.Phase) > maxPhase {
		return Progress{}, false
	}
	return p, true
}

// Termination is the JSON the encoder server writes to its termination message when it exits
// with an error.
type Termination struct {
	// Reason is the machine-readable cause.
	Reason Code `json:"reason"`
	// Message is the error, for humans.
	Message string `json:"message"`
}

// TerminationFor is err's termination message (its Code, or CodeEncoderFailed), at most
// MaxMessageBytes long.
func TerminationFor(err error) []byte {
	code := CodeOf(err, CodeEncoderFailed)
	return fit(err.Error(), func(text string) any { return Termination{Reason: code, Message: text} })
}

// ParseTermination reads an encoder's termination message. An empty message becomes
// CodeNoMessage; one that is not the contract's JSON (a log tail, an older encoder's plain text)
// becomes CodeUnreadable with the text as Message.
func ParseTermination(msg string) Termination {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return Termination{Reason: CodeNoMessage}
	}
	var t Termination
	if err := json.Unmarshal([]byte(msg), &t); err != nil || t.Reason == "" {
		return Termination{Reason: CodeUnreadable, Message: msg}
	}
	return t
}

// fit marshals with(text), cutting text (marked "…") until the JSON is at most MaxMessageBytes:
// escaping can make the JSON of a text several times longer than the text.
func fit(text string, with func(text string) any) []byte {
	for n := len(text); ; n /= 2 {
		t := text
		if n < len(text) {
			for n > 0 && !utf8.RuneStart(text[n]) {
				n--
			}
			t = text[:n] + "…"
		}
		b, _ := json.Marshal(with(t)) // strings, numbers and a time: always marshal
		if len(b) <= MaxMessageBytes || n == 0 {
			return b
		}
	}
}
