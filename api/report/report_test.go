package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestStageResultRoundTrip(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, r := range []StageResult{
		{Key: "k1", Dir: "/cache/k1", SourceSHA256: strings.Repeat("ab", 32), SourcePrecision: "fp32", SizeBytes: 41181184, StagedAt: at},
		{Key: "k1", SourcePrecision: "int8", Existing: true},
		FailedStage(errors.New("download https://x: 404 Not Found")),
	} {
		if diff := cmp.Diff(r, ParseStageResult(string(r.Marshal()))); diff != "" {
			t.Errorf("round trip of %+v (-want +got):\n%s", r, diff)
		}
	}
}

// TestStageResultWire pins the JSON field names the operator's stored weights records hold.
func TestStageResultWire(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	got := string(StageResult{Key: "k", Dir: "/cache/k", SourceSHA256: "ab", SourcePrecision: "fp32", SizeBytes: 7, StagedAt: at, Existing: true}.Marshal())
	want := `{"key":"k","dir":"/cache/k","sourceSHA256":"ab","sourcePrecision":"fp32","sizeBytes":7,"stagedAt":"2026-05-01T12:00:00Z","existing":true}`
	if got != want {
		t.Errorf("success JSON\n got %s\nwant %s", got, want)
	}
	if got, want := string(FailedStage(errors.New("boom")).Marshal()), `{"reason":"StagingFailed","error":"boom"}`; got != want {
		t.Errorf("failure JSON %s, want %s", got, want)
	}
}

func TestParseStageResult(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want StageResult
	}{
		{"stager error with code", `{"reason":"StagingFailed","error":"sha256 mismatch"}`, StageResult{Reason: CodeStagingFailed, Error: "sha256 mismatch"}},
		{"older stager's error without code", `{"error":"download: 404"}`, StageResult{Reason: CodeStagingFailed, Error: "download: 404"}},
		{"log tail after a crash", "panic: boom\ngoroutine 1", StageResult{Reason: CodeUnreadable, Error: "panic: boom\ngoroutine 1"}},
		{"empty", " \n", StageResult{Reason: CodeNoMessage, Error: "the stager left no result"}},
		{"no key", `{"dir":"/cache/x"}`, StageResult{Reason: CodeUnreadable, Error: "stager result: no key"}},
		{"key escapes the cache", `{"key":"../etc"}`, StageResult{Reason: CodeUnreadable, Error: `stager result: key "../etc" is not a single directory name`}},
		{"key is a path", `{"key":"a\\b"}`, StageResult{Reason: CodeUnreadable, Error: `stager result: key "a\b" is not a single directory name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseStageResult(tt.msg)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseStageResult (-want +got):\n%s", diff)
			}
			if !got.Failed() {
				t.Errorf("Failed() = false for %+v", got)
			}
		})
	}
}

// TestMessagesFit: whatever the error, the JSON fits a termination message and stays valid.
func TestMessagesFit(t *testing.T) {
	for _, text := range []string{strings.Repeat("x", 10000), strings.Repeat("\x00", 5000), strings.Repeat("é", 3000), strings.Repeat(`"`, 9000)} {
		err := errors.New(text)
		for name, b := range map[string][]byte{"stage": FailedStage(err).Marshal(), "termination": TerminationFor(err)} {
			if len(b) > MaxMessageBytes || !json.Valid(b) || !utf8.Valid(b) {
				t.Errorf("%s message of a %d-byte error: %d bytes, valid JSON %v", name, len(text), len(b), json.Valid(b))
			}
		}
		if r := ParseStageResult(string(FailedStage(err).Marshal())); r.Reason != CodeStagingFailed || !strings.HasSuffix(r.Error, "…") {
			t.Errorf("cut stage error: reason %q, error ends %q", r.Reason, r.Error[max(0, len(r.Error)-8):])
		}
	}
}

func TestTermination(t *testing.T) {
	npu := WithCode(CodeNPUUnavailable, errors.New("--backend npu: not available"))
	tests := []struct {
		name string
		msg  string
		want Termination
	}{
		{"coded", string(TerminationFor(fmt.Errorf("serve: %w", npu))), Termination{Reason: CodeNPUUnavailable, Message: "serve: --backend npu: not available"}},
		{"uncoded error", string(TerminationFor(errors.New("http listen: address in use"))), Termination{Reason: CodeEncoderFailed, Message: "http listen: address in use"}},
		{"plain text of an older encoder", "--backend npu: the NPU backend is not available", Termination{Reason: CodeUnreadable, Message: "--backend npu: the NPU backend is not available"}},
		{"JSON without a reason", `{"message":"x"}`, Termination{Reason: CodeUnreadable, Message: `{"message":"x"}`}},
		{"empty", "", Termination{Reason: CodeNoMessage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseTermination(tt.msg)); diff != "" {
				t.Errorf("ParseTermination(%q) (-want +got):\n%s", tt.msg, diff)
			}
		})
	}
}

func TestCodeOf(t *testing.T) {
	if got := CodeOf(fmt.Errorf("a: %w", WithCode(CodeModelLoadFailed, errors.New("b"))), CodeEncoderFailed); got != CodeModelLoadFailed {
		t.Errorf("wrapped code = %q", got)
	}
	if got := CodeOf(errors.New("b"), CodeEncoderFailed); got != CodeEncoderFailed {
		t.Errorf("fallback = %q", got)
	}
	if WithCode(CodeEncoderFailed, nil) != nil {
		t.Error("WithCode(nil) is not nil")
	}
	inner := errors.New("inner")
	if !errors.Is(WithCode(CodeEncoderFailed, inner), inner) {
		t.Error("WithCode hides the wrapped error from errors.Is")
	}
}

func TestProgress(t *testing.T) {
	p := Progress{Phase: "hash", BytesDone: 3, BytesTotal: 4}
	if got, ok := ParseProgress(p.Marshal()); !ok || got != p {
		t.Errorf("round trip: %+v, %v", got, ok)
	}
	if got := p.Marshal(); got != `{"phase":"hash","bytesDone":3,"bytesTotal":4}` {
		t.Errorf("annotation value %s", got)
	}
	for _, bad := range []string{"", "{", `{"phase":"x","bytesDone":-1}`, `{"phase":"x","bytesTotal":-1}`, `{"phase":"` + strings.Repeat("p", 33) + `"}`} {
		if _, ok := ParseProgress(bad); ok {
			t.Errorf("ParseProgress(%q) accepted", bad)
		}
	}
}

// A result without capabilities (an older stager) encodes only; a whole model's round-trips.
func TestStageResultCapabilities(t *testing.T) {
	old := ParseStageResult(`{"key":"abc"}`)
	if got := old.Caps().Tasks(); len(got) != 1 || got[0] != "encode" {
		t.Errorf("capabilities of an older result: %v, want [encode]", got)
	}
	whole := StageResult{Key: "k", Capabilities: &Capabilities{Encode: true, Transcribe: true, Translate: true, Languages: []string{"en", "de"}}}
	back := ParseStageResult(string(whole.Marshal()))
	if got := back.Caps(); strings.Join(got.Tasks(), ",") != "encode,transcribe,translate" || strings.Join(got.Languages, ",") != "en,de" {
		t.Errorf("round trip: %+v", got)
	}
}
