package transcribe

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// checkResult verifies what every transcription must satisfy: segments in
// order, ids numbered, no suppressed token, the text that of the segments'
// tokens (Whisper's decode of all tokens).
func checkResult(t *testing.T, tk *tokenizer.Tokenizer, g GenerationConfig, r Result) {
	t.Helper()
	banned := map[int]bool{tk.Specials().EOT: true}
	for _, id := range g.SuppressTokens {
		banned[id] = true
	}
	prevEnd := 0.0
	var all []int
	for i, s := range r.Segments {
		if s.ID != i {
			t.Errorf("segment %d has id %d", i, s.ID)
		}
		if s.Start < prevEnd-1e-9 && s.Tokens != nil && len(s.Tokens) > 0 || s.End < s.Start {
			t.Errorf("segment %d [%.2f, %.2f] after %.2f", i, s.Start, s.End, prevEnd)
		}
		if s.Start > r.Duration+30 {
			t.Errorf("segment %d starts at %.2f, audio is %.2f s", i, s.Start, r.Duration)
		}
		for _, id := range s.Tokens {
			if banned[id] {
				t.Errorf("segment %d holds suppressed token %d", i, id)
			}
		}
		prevEnd = s.End
		all = append(all, s.Tokens...)
	}
	text, err := tk.Decode(all)
	if err != nil || text != r.Text {
		t.Errorf("text %q, want the segments' %q (%v)", r.Text, text, err)
	}
}

func TestTranscribeMicro(t *testing.T) {
	tr := newMicro(t, 0)
	tk := tr.tk
	cases := map[string]struct {
		pcm []float32
		o   Options
	}{
		"jfk":                 {jfk(t), Options{}},
		"jfk no timestamps":   {jfk(t), Options{WithoutTimestamps: true, Language: "en"}},
		"jfk greedy":          {jfk(t), Options{Temperatures: []float64{0}, Language: "de", Task: tokenizer.Translate}},
		"silence":             {make([]float32, 5*SampleRate), Options{}},
		"noise 45 s":          {noise(45*SampleRate, 0.3, 7), Options{Temperatures: []float64{0}, Prompt: "hello there"}},
		"forced 20":           {jfk(t), Options{ForceTokens: true, MaxTokens: 20, WithoutTimestamps: true, Temperatures: []float64{0}}},
		"empty":               {nil, Options{Language: "en"}},
		"5 min long-form":     {repeat(jfk(t), 300*SampleRate), Options{Language: "en", Prompt: "So,", Temperatures: []float64{0}}},
		"no condition, 0.2 s": {noise(SampleRate/5, 0.1, 3), Options{NoConditionOnPrevious: true}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var emitted []Segment
			r, err := tr.Transcribe(context.Background(), c.pcm, c.o, func(s Segment) error {
				emitted = append(emitted, s)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(emitted) != len(r.Segments) {
				t.Errorf("emitted %d segments, result has %d", len(emitted), len(r.Segments))
			}
			if math.Abs(r.Duration-float64(len(c.pcm))/SampleRate) > 1e-9 {
				t.Errorf("duration %v", r.Duration)
			}
			if len(c.pcm) > 0 && r.Language == "" {
				t.Error("no language")
			}
			checkResult(t, tk, tr.cfg.Generation, r)
			t.Logf("%s: %d segments, language %s, text %q", name, len(r.Segments), r.Language, r.Text)
		})
	}
}

func TestTranscribeErrors(t *testing.T) {
	tr := newMicro(t, 0)
	pcm := make([]float32, SampleRate)
	for name, c := range map[string]struct {
		o    Options
		want error
	}{
		"beam":      {Options{BeamSize: 500}, nil},
		"language":  {Options{Language: "klingon"}, nil},
		"task":      {Options{Task: "summarise"}, nil},
		"maxtokens": {Options{MaxTokens: 1000}, nil},
		"temp":      {Options{Temperatures: []float64{math.NaN()}}, nil},
	} {
		_, err := tr.Transcribe(context.Background(), pcm, c.o, nil)
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestFallback: with Whisper's default schedule every segment's decode
// either passed the thresholds or was the last temperature; random weights
// repeat themselves, so some windows fall back.
func TestFallback(t *testing.T) {
	tr := newMicro(t, 0)
	o := Options{Language: "en", BestOf: 2}.Defaulted()
	r, err := tr.Transcribe(context.Background(), noise(40*SampleRate, 0.3, 5), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, tr.tk, tr.cfg.Generation, r)
	last := o.Temperatures[len(o.Temperatures)-1]
	fell := 0
	for _, s := range r.Segments {
		stats := windowResult{compression: s.CompressionRatio, avgLogProb: s.AvgLogProb, noSpeech: s.NoSpeechProb}
		if s.Temperature != last && needsFallback(stats, o) {
			t.Errorf("segment %d kept at temperature %.1f fails the thresholds: %+v", s.ID, s.Temperature, stats)
		}
		if s.Temperature > 0 {
			fell++
		}
	}
	t.Logf("%d segments, %d decoded at a fallback temperature", len(r.Segments), fell)
	if fell == 0 {
		t.Error("no window fell back")
	}
}

// repeat tiles x to n samples.
func repeat(x []float32, n int) []float32 {
	out := make([]float32, 0, n)
	for len(out) < n {
		out = append(out, x[:min(len(x), n-len(out))]...)
	}
	return out
}

func TestNewErrors(t *testing.T) {
	f := microFixture(t)
	en, err := tokenizer.Builtin(tokenizer.GPT2, tokenizer.DefaultLanguages)
	if err != nil {
		t.Fatal(err)
	}
	good := Config{Encoder: ModelEncoder{f.enc}, Decoder: f.dec, Tokenizer: f.tk, Generation: f.gen, NMels: 80}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no encoder", func(c *Config) { c.Encoder = nil }, "Encoder is nil"},
		{"no decoder", func(c *Config) { c.Decoder = nil }, "Decoder is nil"},
		{"mels", func(c *Config) { c.NMels = 64 }, "NMels: expected 80 or 128, found 64"},
		{"vocab", func(c *Config) { c.Tokenizer = en; c.Generation = DefaultGenerationConfig(en) }, "has 51864 ids but the decoder 1864 logits"},
		{"generation", func(c *Config) { c.Generation.NoTimestampsTokenID = 7 }, "no_timestamps_token_id"},
		{"batch", func(c *Config) { c.MaxBatch = -1 }, "MaxBatch"},
	} {
		cfg := good
		c.mod(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to say %q", c.name, err, c.want)
		}
	}
	tr, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if c := tr.Capabilities(); !c.Transcribe || !c.Translate || len(c.Languages) != 99 || c.Languages[0] != "en" {
		t.Errorf("capabilities %+v", c)
	}
}
