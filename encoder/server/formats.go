package server

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// transcriptionJSON is response_format json: OpenAI's Transcription.
type transcriptionJSON struct {
	Text  string        `json:"text"`
	Usage durationUsage `json:"usage"`
}

// durationUsage is OpenAI's usage of a whisper-1 request: seconds of audio.
type durationUsage struct {
	Type    string  `json:"type"` // "duration"
	Seconds float64 `json:"seconds"`
}

// verboseJSON is response_format verbose_json: OpenAI's TranscriptionVerbose.
type verboseJSON struct {
	Task     string            `json:"task"`
	Language string            `json:"language"` // English name, as OpenAI gives it
	Duration float64           `json:"duration"`
	Text     string            `json:"text"`
	Segments []verboseSegment  `json:"segments,omitempty"`
	Words    []transcribe.Word `json:"words,omitempty"`
	Usage    durationUsage     `json:"usage"`
}

// verboseSegment is OpenAI's TranscriptionSegment (words are listed at the
// top level, not per segment).
type verboseSegment struct {
	ID               int     `json:"id"`
	Seek             int     `json:"seek"`
	Start            float64 `json:"start"`
	End              float64 `json:"end"`
	Text             string  `json:"text"`
	Tokens           []int   `json:"tokens"`
	Temperature      float64 `json:"temperature"`
	AvgLogProb       float64 `json:"avg_logprob"`
	CompressionRatio float64 `json:"compression_ratio"`
	NoSpeechProb     float64 `json:"no_speech_prob"`
}

// verbose builds the verbose_json body; granularity says which of segments
// and words to list (none: segments).
func verbose(task tokenizer.Task, res transcribe.Result, granularity map[string]bool) verboseJSON {
	lang := res.Language
	if name, ok := tokenizer.LanguageName(res.Language); ok {
		lang = name
	}
	v := verboseJSON{Task: string(task), Language: lang, Duration: res.Duration, Text: res.Text,
		Usage: durationUsage{Type: "duration", Seconds: res.Duration}}
	withSegments := len(granularity) == 0 || granularity["segment"]
	for _, s := range res.Segments {
		if withSegments {
			v.Segments = append(v.Segments, verboseSegment{ID: s.ID, Seek: s.Seek, Start: s.Start, End: s.End,
				Text: s.Text, Tokens: nonNil(s.Tokens), Temperature: s.Temperature, AvgLogProb: finite(s.AvgLogProb),
				CompressionRatio: finite(s.CompressionRatio), NoSpeechProb: finite(s.NoSpeechProb)})
		}
		if granularity["word"] {
			v.Words = append(v.Words, s.Words...)
		}
	}
	if granularity["word"] && v.Words == nil {
		v.Words = []transcribe.Word{}
	}
	return v
}

func nonNil(t []int) []int {
	if t == nil {
		return []int{}
	}
	return t
}

// finite maps NaN and ±Inf (which JSON cannot carry) to 0 and ±MaxFloat64.
func finite(x float64) float64 {
	switch {
	case math.IsNaN(x):
		return 0
	case math.IsInf(x, 1):
		return math.MaxFloat64
	case math.IsInf(x, -1):
		return -math.MaxFloat64
	}
	return x
}

// writeSubtitles writes the segments as SRT or WebVTT cues.
func writeSubtitles(w io.Writer, format string, segs []transcribe.Segment) error {
	var b strings.Builder
	if format == FormatVTT {
		b.WriteString("WEBVTT\n\n")
	}
	n := 0
	for _, s := range segs {
		text := strings.TrimSpace(s.Text)
		if text == "" {
			continue
		}
		n++
		if format == FormatSRT {
			fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", n, timestamp(s.Start, ','), timestamp(s.End, ','), text)
		} else {
			fmt.Fprintf(&b, "%s --> %s\n%s\n\n", timestamp(s.Start, '.'), timestamp(s.End, '.'), text)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// timestamp formats seconds as HH:MM:SS,mmm (SRT, sep ',') or HH:MM:SS.mmm
// (WebVTT, sep '.').
func timestamp(sec float64, sep byte) string {
	ms := int64(math.Round(max(sec, 0) * 1000))
	h, ms := ms/3_600_000, ms%3_600_000
	m, ms := ms/60_000, ms%60_000
	s, ms := ms/1000, ms%1000
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", h, m, s, sep, ms)
}

// validUTF8 returns res with every text made valid UTF-8 (a maximal
// ill-formed subsequence becomes U+FFFD, as browsers decode): a text may end
// inside a character, and every format promises UTF-8.
func validUTF8(res transcribe.Result) transcribe.Result {
	res.Text = tokenizer.ValidUTF8(res.Text)
	segs := make([]transcribe.Segment, len(res.Segments))
	for i, s := range res.Segments {
		s.Text = tokenizer.ValidUTF8(s.Text)
		if s.Words != nil {
			words := make([]transcribe.Word, len(s.Words))
			for j, w := range s.Words {
				w.Word = tokenizer.ValidUTF8(w.Word)
				words[j] = w
			}
			s.Words = words
		}
		segs[i] = s
	}
	res.Segments = segs
	return res
}

// writeTranscription writes a finished transcription in format.
func writeTranscription(w io.Writer, format string, task tokenizer.Task, res transcribe.Result, granularity map[string]bool) error {
	res = validUTF8(res)
	switch format {
	case FormatText:
		_, err := io.WriteString(w, res.Text+"\n")
		return err
	case FormatSRT, FormatVTT:
		return writeSubtitles(w, format, res.Segments)
	case FormatVerboseJSON:
		return json.NewEncoder(w).Encode(verbose(task, res, granularity))
	}
	return json.NewEncoder(w).Encode(transcriptionJSON{Text: res.Text, Usage: durationUsage{Type: "duration", Seconds: res.Duration}})
}

// contentType is the media type of a response format.
func contentType(format string) string {
	switch format {
	case FormatText, FormatSRT:
		return "text/plain; charset=utf-8"
	case FormatVTT:
		return "text/vtt; charset=utf-8"
	}
	return ContentTypeJSON
}
