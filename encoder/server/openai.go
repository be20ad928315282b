package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// WhisperAlias is the model name most OpenAI clients hard-code; the
// transcription API accepts it for the served model.
const WhisperAlias = "whisper-1"

// Response formats of the transcription API (OpenAI's response_format).
const (
	FormatJSON        = "json"
	FormatText        = "text"
	FormatSRT         = "srt"
	FormatVTT         = "vtt"
	FormatVerboseJSON = "verbose_json"
)

// apiError is an OpenAI error object with its HTTP status:
// {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

// invalid is a 400 invalid_request_error about param (empty: none).
func invalid(param, format string, args ...any) *apiError {
	e := &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: fmt.Sprintf(format, args...)}
	if param != "" {
		e.Param = &param
	}
	return e
}

// withCode sets the error's machine-readable code.
func (e *apiError) withCode(code string) *apiError {
	e.Code = &code
	return e
}

// asAPIError turns any error of the request path into an OpenAI error
// object: an *apiError as it is, a server *Error (admission, audio, limits)
// by its status.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	status := httpStatus(err)
	e := &apiError{Status: status, Message: err.Error()}
	switch {
	case status == http.StatusTooManyRequests:
		e.Type = "rate_limit_error"
		e.withCode("rate_limit_exceeded")
	case status == http.StatusServiceUnavailable:
		e.Type = "server_error"
		e.withCode("service_unavailable")
	case status == http.StatusRequestEntityTooLarge:
		e.Type = "invalid_request_error"
		e.withCode("request_too_large")
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		e.Type = "timeout_error"
	case status < 500:
		e.Type = "invalid_request_error"
	default:
		e.Type = "server_error"
	}
	if codeOf(err) == codes.InvalidArgument && status == http.StatusBadRequest {
		// Audio that cannot be decoded or is too long: about the file.
		file := "file"
		e.Param = &file
	}
	return e
}

// transcriptionForm is a parsed /v1/audio/{transcriptions,translations}
// request, everything but the file.
type transcriptionForm struct {
	model       string
	language    string
	prompt      string
	format      string
	temperature *float64
	granularity map[string]bool // "segment", "word"
	stream      bool
	beamSize    int // beam_size, an extension (0: the server's default)
}

// set records one form field; unknown fields are ignored, as OpenAI's
// clients send fields other servers may not know (chunking_strategy,
// include[]).
func (f *transcriptionForm) set(name, value string) error {
	switch name {
	case "model":
		f.model = strings.TrimSpace(value)
	case "language":
		f.language = strings.TrimSpace(value)
	case "prompt":
		f.prompt = value
	case "response_format":
		f.format = strings.TrimSpace(value)
	case "temperature":
		t, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || math.IsNaN(t) || t < 0 || t > 1 {
			return invalid("temperature", "temperature %q: want a number from 0 to 1", value)
		}
		f.temperature = &t
	case "timestamp_granularities[]", "timestamp_granularities":
		for _, g := range strings.Split(value, ",") {
			switch g = strings.TrimSpace(g); g {
			case "segment", "word":
				if f.granularity == nil {
					f.granularity = map[string]bool{}
				}
				f.granularity[g] = true
			default:
				return invalid("timestamp_granularities", "timestamp_granularities %q: want segment or word", g)
			}
		}
	case "beam_size": // not OpenAI's: whisper.cpp's and faster-whisper's servers take it
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return invalid("beam_size", "beam_size %q: want a whole number (1: greedy)", value)
		}
		f.beamSize = n
	case "stream":
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return invalid("stream", "stream %q: want true or false", value)
		}
		f.stream = b
	}
	return nil
}

// check validates the fields against each other and the served model, and
// returns the decoding options they ask for.
func (f *transcriptionForm) check(task tokenizer.Task, ids []string, caps transcribe.Capabilities) (transcribe.Options, error) {
	if f.model == "" {
		return transcribe.Options{}, invalid("model", "you must provide a model parameter (this server serves %s)", quoteList(ids))
	}
	if !contains(ids, f.model) {
		return transcribe.Options{}, invalid("model", "model %q is not served here: want one of %s", f.model, quoteList(ids)).withCode("model_not_found")
	}
	if err := checkCapability(task, ids[0], caps); err != nil {
		return transcribe.Options{}, err
	}
	if f.format == "" {
		f.format = FormatJSON
	}
	switch f.format {
	case FormatJSON, FormatText, FormatSRT, FormatVTT, FormatVerboseJSON:
	default:
		return transcribe.Options{}, invalid("response_format", "response_format %q: want json, text, srt, vtt or verbose_json", f.format)
	}
	if f.stream && f.format != FormatJSON && f.format != FormatText {
		return transcribe.Options{}, invalid("response_format", "response_format %q cannot be streamed: with stream=true use json or text", f.format)
	}
	if len(f.granularity) > 0 && f.format != FormatVerboseJSON {
		return transcribe.Options{}, invalid("timestamp_granularities", "timestamp_granularities needs response_format verbose_json, got %s", f.format)
	}
	o := transcribe.Options{Task: task, Prompt: f.prompt, WordTimestamps: f.granularity["word"], BeamSize: f.beamSize}
	if f.language != "" {
		code, err := tokenizer.LanguageCode(f.language)
		if err != nil {
			return transcribe.Options{}, invalid("language", "language: %v", err)
		}
		if len(caps.Languages) > 0 && !contains(caps.Languages, code) {
			return transcribe.Options{}, invalid("language", "language %q: model %s knows %s", f.language, ids[0], quoteList(caps.Languages))
		}
		o.Language = code
	}
	if f.temperature != nil && *f.temperature > 0 {
		// OpenAI: a temperature > 0 samples at it; 0 (the default) lets
		// Whisper raise it on failure (the fallback schedule).
		o.Temperatures = []float64{*f.temperature}
	}
	return o, nil
}

// checkCapability refuses a task the served model cannot do, naming what it can.
func checkCapability(task tokenizer.Task, id string, caps transcribe.Capabilities) error {
	can := task == tokenizer.Transcribe && caps.Transcribe || task == tokenizer.Translate && caps.Translate
	if can {
		return nil
	}
	why := ""
	switch {
	case !caps.Transcribe:
		why = " (it has no decoder: it serves encoder hidden states at /v1/encode)"
	case task == tokenizer.Translate:
		why = " (an English-only model cannot translate)"
	}
	return invalid("model", "model %s cannot %s: it can %s%s", id, task, capabilityList(caps), why).withCode("unsupported_task")
}

// capabilityList names what a model can do: "encode, transcribe".
func capabilityList(c transcribe.Capabilities) string {
	var can []string
	for _, x := range []struct {
		ok   bool
		name string
	}{{c.Encode, "encode"}, {c.Transcribe, "transcribe"}, {c.Translate, "translate"}} {
		if x.ok {
			can = append(can, x.name)
		}
	}
	if len(can) == 0 {
		return "nothing"
	}
	return strings.Join(can, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
