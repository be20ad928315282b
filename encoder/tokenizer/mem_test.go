package tokenizer

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestResidentCost logs what a parsed vocabulary keeps on the heap and how
// long parsing and encoding take (figures for the README; no timed assertion).
// It parses its own copies, so it measures even when Builtin already ran.
func TestResidentCost(t *testing.T) {
	for _, c := range []struct{ name, src string }{{GPT2, gpt2Tiktoken}, {Multilingual, multilingualTiktoken}} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		tk, err := ParseTiktoken(c.src, c.name, DefaultLanguages)
		if err != nil {
			t.Fatal(err)
		}
		parse := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		text := strings.Repeat("And so my fellow Americans, ask not what your country can do for you — ask what you can do for your country. It's 1961! ", 8500)
		start = time.Now()
		ids := tk.Encode(text)
		enc := time.Since(start)
		t.Logf("%s: %.1f MB resident after parsing (%v); %d bytes of English → %d ids in %v",
			c.name, float64(after.HeapAlloc-before.HeapAlloc)/1e6, parse.Round(time.Millisecond), len(text), len(ids), enc.Round(time.Millisecond))
		runtime.KeepAlive(tk)
	}
}

// BenchmarkEncode: go test -bench Encode ./encoder/tokenizer
func BenchmarkEncode(b *testing.B) {
	tk := builtin(b, Multilingual, DefaultLanguages)
	text := strings.Repeat("And so my fellow Americans, ask not what your country can do for you — ask what you can do for your country. It's 1961! ", 8500)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tk.Encode(text)
	}
}

func BenchmarkDecode(b *testing.B) {
	tk := builtin(b, Multilingual, DefaultLanguages)
	ids := tk.Encode(strings.Repeat("And so my fellow Americans, 你好，世界 🙂 ", 8000))
	for b.Loop() {
		if _, err := tk.DecodeText(ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ids)), "ns/id")
}
