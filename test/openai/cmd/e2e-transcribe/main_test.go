package main

import (
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// TestGreedy: a reference with a sampled (fallback) segment is refused.
func TestGreedy(t *testing.T) {
	ok := transcribe.Result{Segments: []transcribe.Segment{{ID: 0}, {ID: 1}}}
	if err := greedy(ok); err != nil {
		t.Errorf("greedy reference refused: %v", err)
	}
	sampled := transcribe.Result{Segments: []transcribe.Segment{{ID: 0}, {ID: 1, Temperature: 0.2}}}
	if err := greedy(sampled); err == nil || !strings.Contains(err.Error(), "segment 1") {
		t.Errorf("sampled reference: %v, want an error naming segment 1", err)
	}
}

// TestSameSegment: every compared field of a segment counts.
func TestSameSegment(t *testing.T) {
	ref := transcribe.Segment{ID: 2, Seek: 494, Start: 5.24, End: 9.88, Text: " a", Tokens: []int{1050, 244}, AvgLogProb: -0.25}
	api := openai.TranscriptionSegment{ID: 2, Seek: 494, Start: 5.24, End: 9.88, Text: " a", Tokens: []int64{1050, 244}, AvgLogprob: -0.25}
	if err := sameSegment(api, ref); err != nil {
		t.Fatalf("equal segments: %v", err)
	}
	for name, edit := range map[string]func(*openai.TranscriptionSegment){
		"token":       func(s *openai.TranscriptionSegment) { s.Tokens = []int64{1050, 245} },
		"tokens":      func(s *openai.TranscriptionSegment) { s.Tokens = s.Tokens[:1] },
		"avg_logprob": func(s *openai.TranscriptionSegment) { s.AvgLogprob = -0.26 },
		"end":         func(s *openai.TranscriptionSegment) { s.End = 9.9 },
		"text":        func(s *openai.TranscriptionSegment) { s.Text = " b" },
		"temperature": func(s *openai.TranscriptionSegment) { s.Temperature = 0.2 },
		"seek":        func(s *openai.TranscriptionSegment) { s.Seek = 0 },
	} {
		s := api
		s.Tokens = append([]int64(nil), api.Tokens...)
		edit(&s)
		if err := sameSegment(s, ref); err == nil {
			t.Errorf("%s differs: no error", name)
		}
	}
}

// TestRunUsage: missing flags are refused before anything is loaded.
func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"-base-url", "http://x/v1"}, {"fixture", "-from", "a"}, {"-audio", "a", "extra"}} {
		if err := run(args); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}
