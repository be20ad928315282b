package transcribe

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// microRules are the rules of hf-micro's vocabulary (eot 256, timestamps
// from 363) with timestamps on.
func microRules(t *testing.T) rules {
	tr := newMicro(t, 0)
	return tr.rules(Options{}.Defaulted())
}

func flat(n int, v float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = v
	}
	return x
}

func allowed(x []float32) (text, ts []int) {
	for i, v := range x {
		if v != negInf {
			if i >= 363 {
				ts = append(ts, i)
			} else {
				text = append(text, i)
			}
		}
	}
	return text, ts
}

func TestTimestampRules(t *testing.T) {
	r := microRules(t)
	const n, tb, eot = 1864, 363, 256
	if r.tsBegin != tb || r.eot != eot || r.noTimestamps != 362 {
		t.Fatalf("micro specials: %+v", r)
	}

	// first step: a timestamp ≤ 1.00 s, no text, no <|notimestamps|>
	x := flat(n, 0)
	r.apply(x, nil)
	text, ts := allowed(x)
	if len(text) != 0 || ts[0] != tb || ts[len(ts)-1] != tb+50 {
		t.Errorf("first step allows text %v, timestamps %d…%d; want none, %d…%d", text, ts[0], ts[len(ts)-1], tb, tb+50)
	}

	// after <|0.40|> and text: timestamps from 0.42 (nonzero length), text
	x = flat(n, 0)
	r.apply(x, []int{tb + 20, 65})
	if _, ts = allowed(x); ts[0] != tb+21 {
		t.Errorf("after <|0.40|> text: first timestamp allowed %d, want %d", ts[0], tb+21)
	}

	// a segment's end just sampled: only the next start (≥ the end) or EOT
	x = flat(n, 0)
	x[eot] = 10 // above the timestamps' mass
	r.apply(x, []int{tb + 20, 65, tb + 30})
	text, ts = allowed(x)
	if text[0] != eot || ts[0] != tb+30 {
		t.Errorf("after a segment end: text from %d (want EOT, %d), first timestamp %d (want %d)", text[0], eot, ts[0], tb+30)
	}

	// a pair just closed: no timestamp
	x = flat(n, 0)
	r.apply(x, []int{tb + 20, 65, tb + 30, tb + 30})
	if _, ts = allowed(x); len(ts) != 0 {
		t.Errorf("after a pair: timestamps %v allowed", ts)
	}

	// timestamp mass beats every text token: text banned
	x = flat(n, 0)
	x[65] = 5 // log Σ_ts exp(0) = log 1501 ≈ 7.3 > 5
	r.apply(x, []int{tb, 65})
	if text, _ = allowed(x); len(text) != 0 {
		t.Errorf("timestamp mass wins but text %v allowed", text)
	}
	x = flat(n, 0)
	x[65] = 8 // > 7.3: text stays
	r.apply(x, []int{tb, 65})
	if text, _ = allowed(x); len(text) == 0 {
		t.Error("a text token beats the timestamp mass but text is banned")
	}
}

func TestSuppressRules(t *testing.T) {
	r := microRules(t)
	r.timestamps = false
	x := flat(1864, 0)
	r.apply(x, nil)
	for _, id := range append(append([]int{}, r.suppress...), r.beginSuppress...) {
		if x[id] != negInf {
			t.Errorf("first step: %d not suppressed", id)
		}
	}
	x = flat(1864, 0)
	r.apply(x, []int{65})
	if x[32] == negInf || x[256] == negInf {
		t.Error("blank and EOT suppressed after the first step")
	}
	r.forceTokens = true
	x = flat(1864, 0)
	r.apply(x, []int{65})
	if x[256] != negInf {
		t.Error("ForceTokens: EOT allowed")
	}
}

func TestCompressionRatio(t *testing.T) {
	// Python's len(b)/len(zlib.compress(b)) for these texts; Go's deflate
	// is not zlib's and may differ by a byte or two.
	for _, c := range []struct {
		text   string
		python float64
	}{
		{" And so my fellow Americans", 27.0 / 35},
		{strings.Repeat(" the the", 20), 160.0 / 15},
		{" And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.", 108.0 / 79},
	} {
		got := compressionRatio(c.text)
		if c.python > 0 && math.Abs(got-c.python)/c.python > 0.1 {
			t.Errorf("%q: ratio %.3f, Python's zlib %.3f", c.text, got, c.python)
		}
		if (got > DefaultCompressionRatioThreshold) != (c.python > DefaultCompressionRatioThreshold) {
			t.Errorf("%q: ratio %.3f on the wrong side of %.1f", c.text, got, DefaultCompressionRatioThreshold)
		}
	}
}

func TestNeedsFallback(t *testing.T) {
	o := Options{}.Defaulted()
	for _, c := range []struct {
		r    windowResult
		o    Options
		want bool
	}{
		{windowResult{compression: 1.5, avgLogProb: -0.5}, o, false},
		{windowResult{compression: 2.5, avgLogProb: -0.5}, o, true},                 // repetitive
		{windowResult{compression: 1.5, avgLogProb: -1.5}, o, true},                 // unlikely
		{windowResult{compression: 1.5, avgLogProb: -1.5, noSpeech: 0.9}, o, false}, // silence
		{windowResult{compression: 2.5, avgLogProb: -0.5, noSpeech: 0.9}, o, true},  // repetitive speech
		{windowResult{compression: 9, avgLogProb: -9}, Options{CompressionRatioThreshold: math.NaN(), LogProbThreshold: math.NaN()}.Defaulted(), false},
	} {
		if got := needsFallback(c.r, c.o); got != c.want {
			t.Errorf("%+v: fallback %v, want %v", c.r, got, c.want)
		}
	}
}

func TestSplitSegments(t *testing.T) {
	const tb = 363
	ts := func(s float64) int { return tb + int(math.Round(s/0.02)) }
	for name, c := range map[string]struct {
		tokens   []int
		seek     int
		segSize  int
		want     [][3]float64 // start, end, len(tokens)
		wantSeek int
	}{
		// two segments, ending on a lone timestamp: the whole window is done
		"single ending": {[]int{ts(0), 65, 66, ts(1), ts(1), 67, ts(2.5)}, 3000, 3000,
			[][3]float64{{30, 31, 4}, {31, 32.5, 3}}, 6000},
		// the last segment is unfinished: seek to the last pair's timestamp
		"cut": {[]int{ts(0), 65, ts(1), ts(1.5), 66, 67}, 0, 3000,
			[][3]float64{{0, 1, 3}}, 100},
		// pairs only: seek to the last timestamp
		"pair end": {[]int{ts(0), 65, ts(1), ts(1), 66, ts(4), ts(4)}, 0, 1100,
			[][3]float64{{0, 1, 3}, {1, 4, 3}}, 400},
		// no pair: one segment to the last timestamp
		"no pair": {[]int{ts(0), 65, 66, ts(7)}, 100, 1000, [][3]float64{{1, 8, 4}}, 1100},
		// no timestamps: one segment over the audio of the window
		"text only": {[]int{65, 66}, 0, 1100, [][3]float64{{0, 11, 2}}, 1100},
		"nothing":   {nil, 0, 3000, [][3]float64{{0, 30, 0}}, 3000},
	} {
		segs, next, _ := splitSegments(c.tokens, tb, c.seek, c.segSize)
		var got [][3]float64
		for _, s := range segs {
			got = append(got, [3]float64{math.Round(s.start*100) / 100, math.Round(s.end*100) / 100, float64(len(s.tokens))})
		}
		if !reflect.DeepEqual(got, c.want) || next != c.wantSeek {
			t.Errorf("%s: segments %v next seek %d; want %v, %d", name, got, next, c.want, c.wantSeek)
		}
	}
}
