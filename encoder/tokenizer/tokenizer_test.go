package tokenizer

import (
	"encoding/base64"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func builtin(t testing.TB, name string, langs int) *Tokenizer {
	t.Helper()
	tk, err := Builtin(name, langs)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func pieces(s string) []string {
	var out []string
	splitPieces(s, func(p string) { out = append(out, p) })
	return out
}

// TestSplitGPT2Pattern checks the hand-written scanner on the cases where
// the pattern's alternation order and its \s+(?!\S) lookahead matter.
func TestSplitGPT2Pattern(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"a  b", []string{"a", " ", " b"}},               // the run's last space leads the word
		{"a   b", []string{"a", "  ", " b"}},             // …of any length
		{"a \n b", []string{"a", " \n", " b"}},           //
		{"a\nb", []string{"a", "\n", "b"}},               // one non-space whitespace: \s+
		{"a\n\nb", []string{"a", "\n", "\n", "b"}},       // \s+(?!\S) gives "\n", then \s+ gives "\n"
		{"a\t\tb", []string{"a", "\t", "\t", "b"}},       //
		{"a \tb", []string{"a", " ", "\t", "b"}},         //
		{"a  ", []string{"a", "  "}},                     // trailing run: whole (lookahead sees the end)
		{" ", []string{" "}},                             //
		{"\n", []string{"\n"}},                           //
		{"  \n  x", []string{"  \n ", " x"}},             //
		{"x \u00a0y", []string{"x", " ", "\u00a0", "y"}}, // NBSP is \s, and alone before y it is \s+
		{"x\u3000\u3000y", []string{"x", "\u3000", "\u3000", "y"}},
		{"I'm they'll we've it'd 'S", []string{"I", "'m", " they", "'ll", " we", "'ve", " it", "'d", " '", "S"}},
		{"''s", []string{"''", "s"}},                   // contractions only at the match start
		{"don't!'s", []string{"don", "'t", "!'", "s"}}, //
		{"abc123 456def", []string{"abc", "123", " 456", "def"}},
		{"x½²", []string{"x", "½²"}}, // \p{N} includes No
		{"...!!  ?", []string{"...!!", " ", " ?"}},
		{"你好，世界", []string{"你好", "，", "世界"}},
		{"😀 👍🏽 👨‍👩‍👧", []string{"😀", " 👍🏽", " 👨\u200d👩\u200d👧"}},
		{"\xff\xfeab \xc3", []string{"\xff\xfe", "ab", " \xc3"}}, // invalid bytes are "other"
		{"x\u0085y", []string{"x", "\u0085", "y"}},               // NEL is White_Space (tiktoken's \s)
	}
	for _, c := range cases {
		if got := pieces(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("split %q = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestSpecialTokens checks the layout against Whisper's published ids.
func TestSpecialTokens(t *testing.T) {
	multi := builtin(t, Multilingual, DefaultLanguages)
	want := Specials{EOT: 50257, SOT: 50258, Translate: 50358, Transcribe: 50359, SOTLM: 50360,
		SOTPrev: 50361, NoSpeech: 50362, NoTimestamps: 50363, TimestampBegin: 50364}
	if got := multi.Specials(); got != want {
		t.Errorf("multilingual specials %+v, want %+v", got, want)
	}
	if multi.VocabSize() != 51865 || !multi.Multilingual() {
		t.Errorf("multilingual: %d ids, multilingual=%v", multi.VocabSize(), multi.Multilingual())
	}
	v3 := builtin(t, Multilingual, MaxLanguages)
	if v3.VocabSize() != 51866 || v3.Specials().Translate != 50359 || v3.Specials().TimestampBegin != 50365 {
		t.Errorf("large-v3: %d ids, %+v", v3.VocabSize(), v3.Specials())
	}
	en := builtin(t, GPT2, DefaultLanguages)
	if en.VocabSize() != 51864 || en.Multilingual() || en.Specials().EOT != 50256 || en.Specials().NoTimestamps != 50362 {
		t.Errorf(".en: %d ids, %+v", en.VocabSize(), en.Specials())
	}
	for n, want := range map[int]*Tokenizer{51864: en, 51865: multi, 51866: v3} {
		if got, err := ForVocabSize(n); err != nil || got != want {
			t.Errorf("ForVocabSize(%d) = %v, %v", n, got, err)
		}
	}
	if _, err := ForVocabSize(51867); err == nil {
		t.Error("ForVocabSize(51867): no error")
	}
	spell := map[int]string{50257: "<|endoftext|>", 50258: "<|startoftranscript|>", 50259: "<|en|>",
		50260: "<|zh|>", 50357: "<|su|>", 50358: "<|translate|>", 50363: "<|notimestamps|>",
		50364: "<|0.00|>", 50365: "<|0.02|>", 50414: "<|1.00|>", 51864: "<|30.00|>"}
	for id, want := range spell {
		if got, err := multi.TokenText(id); err != nil || got != want {
			t.Errorf("TokenText(%d) = %q, %v; want %q", id, got, err, want)
		}
	}
	if got, _ := v3.TokenText(50358); got != "<|yue|>" {
		t.Errorf("large-v3 token 50358 = %q, want <|yue|>", got)
	}
	if _, err := multi.LanguageToken("yue"); err == nil {
		t.Error("yue in a 99-language vocabulary: no error")
	}
}

func TestLanguagesAndSequences(t *testing.T) {
	multi := builtin(t, Multilingual, DefaultLanguages)
	en := builtin(t, GPT2, DefaultLanguages)
	for _, in := range []string{"en", "English", " ENGLISH "} {
		if id, err := multi.LanguageToken(in); err != nil || id != 50259 {
			t.Errorf("LanguageToken(%q) = %d, %v", in, id, err)
		}
	}
	if code, err := LanguageCode("Mandarin"); err != nil || code != "zh" {
		t.Errorf("Mandarin → %q, %v", code, err)
	}
	if _, err := LanguageCode("klingon"); err == nil {
		t.Error("klingon: no error")
	}
	if code, ok := multi.LanguageOf(50259 + 98); !ok || code != "su" {
		t.Errorf("LanguageOf(last) = %q, %v", code, ok)
	}
	if _, ok := multi.LanguageOf(50358); ok {
		t.Error("LanguageOf(translate) is a language")
	}
	if got := multi.Languages(); len(got) != 99 || got[0] != "en" || got[98] != "su" {
		t.Errorf("Languages() = %d codes", len(got))
	}
	seqs := []struct {
		tk         *Tokenizer
		lang       string
		task       Task
		timestamps bool
		want       []int
	}{
		{multi, "en", Transcribe, true, []int{50258, 50259, 50359}},
		{multi, "ja", Translate, false, []int{50258, 50266, 50358, 50363}},
		{multi, "", "", true, []int{50258}},
		{en, "", "", false, []int{50257, 50362}},
		{en, "en", Transcribe, true, []int{50257}},
	}
	for _, s := range seqs {
		if got, err := s.tk.SOTSequence(s.lang, s.task, s.timestamps); err != nil || !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s SOTSequence(%q, %q, %v) = %v, %v; want %v", s.tk.Name(), s.lang, s.task, s.timestamps, got, err, s.want)
		}
	}
	for _, bad := range []struct {
		tk   *Tokenizer
		lang string
		task Task
	}{{en, "de", ""}, {en, "", Translate}, {multi, "xx", ""}, {multi, "en", "summarise"}} {
		if _, err := bad.tk.SOTSequence(bad.lang, bad.task, true); err == nil {
			t.Errorf("%s SOTSequence(%q, %q): no error", bad.tk.Name(), bad.lang, bad.task)
		}
	}
}

func TestTimestamps(t *testing.T) {
	tk := builtin(t, Multilingual, DefaultLanguages)
	for k := 0; k < NumTimestamps; k++ {
		id := tk.Specials().TimestampBegin + k
		sec, ok := tk.TimestampSeconds(id)
		if !ok || !tk.IsTimestamp(id) || !tk.IsSpecial(id) {
			t.Fatalf("id %d is not a timestamp", id)
		}
		if back, err := tk.TimestampToken(sec); err != nil || back != id {
			t.Fatalf("TimestampToken(%v) = %d, %v; want %d", sec, back, err, id)
		}
	}
	if id, _ := tk.TimestampToken(1.009); id != 50364+50 {
		t.Errorf("1.009 s → %d, want the 1.00 s token", id)
	}
	for _, bad := range []float64{-0.02, 30.02, 1e9} {
		if _, err := tk.TimestampToken(bad); err == nil {
			t.Errorf("TimestampToken(%v): no error", bad)
		}
	}
	if tk.IsTimestamp(50363) || tk.IsSpecial(50256) || !tk.IsSpecial(50257) || tk.IsSpecial(51865) {
		t.Error("IsTimestamp/IsSpecial boundaries wrong")
	}
}

// TestSuppressLists checks the computed lists against the suppress_tokens of
// Hugging Face's generation_config.json for whisper-base (multilingual) and
// whisper-tiny.en, which record what openai/whisper's rule gives.
func TestSuppressLists(t *testing.T) {
	wantMulti := []int{1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93,
		359, 503, 522, 542, 873, 893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627, 3246, 3253, 3268, 3536,
		3846, 3961, 4183, 4667, 6585, 6647, 7273, 9061, 9383, 10428, 10929, 11938, 12033, 12331, 12562, 13793,
		14157, 14635, 15265, 15618, 16553, 16604, 18362, 18956, 20075, 21675, 22520, 26130, 26161, 26435, 28279,
		29464, 31650, 32302, 32470, 36865, 42863, 47425, 49870, 50254, 50258, 50358, 50359, 50360, 50361, 50362}
	wantEn := []int{1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93,
		357, 366, 438, 532, 685, 705, 796, 930, 1058, 1220, 1267, 1279, 1303, 1343, 1377, 1391, 1635, 1782, 1875,
		2162, 2361, 2488, 3467, 4008, 4211, 4600, 4808, 5299, 5855, 6329, 7203, 9609, 9959, 10563, 10786, 11420,
		11709, 11907, 13163, 13697, 13700, 14808, 15306, 16410, 16791, 17992, 19203, 19510, 20724, 22305, 22935,
		27007, 30109, 30420, 33409, 34949, 40283, 40493, 40549, 47282, 49146, 50257, 50357, 50358, 50359, 50360, 50361}
	multi := builtin(t, Multilingual, DefaultLanguages)
	en := builtin(t, GPT2, DefaultLanguages)
	if got := multi.SuppressTokens(); !reflect.DeepEqual(got, wantMulti) {
		t.Errorf("multilingual SuppressTokens = %v", got)
	}
	if got := en.SuppressTokens(); !reflect.DeepEqual(got, wantEn) {
		t.Errorf(".en SuppressTokens = %v", got)
	}
	// large-v3: the same non-speech tokens, the specials one id later (<|yue|>).
	wantV3 := append(append([]int{}, wantMulti[:len(wantMulti)-6]...), 50258, 50359, 50360, 50361, 50362, 50363)
	if got := builtin(t, Multilingual, MaxLanguages).SuppressTokens(); !reflect.DeepEqual(got, wantV3) {
		t.Errorf("large-v3 SuppressTokens = %v", got)
	}
	if got := multi.NonSpeechTokens(); !reflect.DeepEqual(got, wantMulti[:len(wantMulti)-6]) {
		t.Errorf("multilingual NonSpeechTokens = %v", got)
	}
	if got := multi.BlankSuppressTokens(); !reflect.DeepEqual(got, []int{220, 50257}) {
		t.Errorf("BlankSuppressTokens = %v", got)
	}
}

// TestEmbeddedEqualsShared checks that the shipped copies are Whisper's files.
func TestEmbeddedEqualsShared(t *testing.T) {
	for name, embedded := range map[string]string{"gpt2": gpt2Tiktoken, "multilingual": multilingualTiktoken} {
		path := "../../../shared/data/whisper/" + name + ".tiktoken"
		shared, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("reference data not here (%v)", err)
		}
		if string(shared) != embedded {
			t.Errorf("embedded %s.tiktoken differs from %s", name, path)
		}
	}
}

func TestParseTiktokenErrors(t *testing.T) {
	var good strings.Builder
	for b := 0; b < 256; b++ {
		good.WriteString(b64(string([]byte{byte(b)})))
		good.WriteString(" ")
		good.WriteString(itoa(b))
		good.WriteString("\n")
	}
	if tk, err := ParseTiktoken(good.String(), "bytes.tiktoken", 99); err != nil || tk.Specials().EOT != 256 {
		t.Fatalf("byte-only vocabulary: %v", err)
	}
	bad := map[string]string{
		good.String() + "QQ== 7\n":   "want rank 256",
		good.String() + "!!! 256\n":  "token bytes",
		good.String() + "QQ== 256\n": "same bytes",
		"QQ== 0\n":                   "has no token",
		good.String() + "QQ==\n":     "fields",
		"":                           "no tokens",
	}
	for in, want := range bad {
		_, err := ParseTiktoken(in, "x.tiktoken", 99)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "x.tiktoken") {
			t.Errorf("error %v, want one naming x.tiktoken and %q", err, want)
		}
	}
}

// TestMergeHeapEqualsScan checks the two merge loops against each other on
// long pieces of random, repetitive and real text.
func TestMergeHeapEqualsScan(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, name := range []string{GPT2, Multilingual} {
		v := builtin(t, name, DefaultLanguages).v
		alphabets := []string{"ab", "aaaa", "the", "ーンスト", "你好世界的是", "\xe2\x96\x80\x81", "🙂🏽\u200d"}
		for trial := 0; trial < 300; trial++ {
			alpha := []rune(alphabets[trial%len(alphabets)])
			n := 2 + rng.Intn(heapMergeMin-2)
			var b strings.Builder
			for b.Len() < n {
				b.WriteRune(alpha[rng.Intn(len(alpha))])
			}
			piece := b.String()
			if len(piece) > heapMergeMin {
				piece = piece[:heapMergeMin]
			}
			scan := v.mergeScan(nil, piece)
			heap := v.mergeHeap(nil, piece)
			if !reflect.DeepEqual(scan, heap) {
				t.Fatalf("%s %q: scan %v, heap %v", name, piece, scan, heap)
			}
		}
	}
}

// TestRoundTripAnyBytes: Decode(Encode(s)) == s for valid text, and the
// token bytes concatenate back to s for any byte string.
func TestRoundTripAnyBytes(t *testing.T) {
	tk := builtin(t, Multilingual, DefaultLanguages)
	rng := rand.New(rand.NewSource(2))
	for trial := 0; trial < 2000; trial++ {
		buf := make([]byte, rng.Intn(300))
		rng.Read(buf)
		s := string(buf)
		if got := tokenBytes(t, tk, tk.Encode(s)); got != s {
			t.Fatalf("bytes of Encode(%q) = %q", s, got)
		}
	}
	long := strings.Repeat("雨", 20000) + strings.Repeat("!", 5000) + strings.Repeat("a", 7000)
	if got, _ := tk.Decode(tk.Encode(long)); got != long {
		t.Fatal("long pieces do not round-trip")
	}
}

func tokenBytes(t testing.TB, tk *Tokenizer, ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		s, err := tk.TokenText(id)
		if err != nil || tk.IsSpecial(id) {
			t.Fatalf("Encode produced id %d (%v)", id, err)
		}
		b.WriteString(s)
	}
	return b.String()
}

func TestValidUTF8LikePython(t *testing.T) {
	// Expected values are what Python's bytes.decode("utf-8", "replace") gives.
	cases := map[string]string{
		"abc":               "abc",
		"\xe4\xb8":          "\ufffd",       // cut short: one replacement
		"\xe4\xb8a":         "\ufffda",      //
		"\xe0\x80":          "\ufffd\ufffd", // E0 needs A0–BF
		"\xed\xa0\x80":      "\ufffd\ufffd\ufffd",
		"\xf0\x9f\x98":      "\ufffd",
		"\xf0\x9f\x98\x80":  "😀",
		"\xc0\xaf":          "\ufffd\ufffd",
		"\xf5\x80\x80\x80":  "\ufffd\ufffd\ufffd\ufffd",
		"\x80\x80":          "\ufffd\ufffd",
		"\xf4\x90\x80\x80":  "\ufffd\ufffd\ufffd\ufffd", // above U+10FFFF
		"a\xe4\xb8\xad\xe4": "a中\ufffd",
	}
	for in, want := range cases {
		if got := ValidUTF8(in); got != want {
			t.Errorf("ValidUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStreamDecoder: deltas are whole UTF-8 and add up to DecodeText, for
// text whose characters split across tokens and for random ids.
func TestStreamDecoder(t *testing.T) {
	tk := builtin(t, Multilingual, DefaultLanguages)
	texts := []string{"你好，世界 🙂 👨‍👩‍👧 ♪♪ naïve", "ᐊᓂᔑᓈᐯᒧᐎᓐ 𓀀𓀁", "\xe4\xb8 broken"}
	rng := rand.New(rand.NewSource(3))
	for trial := 0; trial < 500; trial++ {
		var ids []int
		if trial < len(texts) {
			ids = tk.Encode(texts[trial])
			ids = append(ids, tk.Specials().TimestampBegin+7)
		} else {
			for k := rng.Intn(20); k > 0; k-- {
				ids = append(ids, rng.Intn(tk.VocabSize()))
			}
		}
		d := tk.NewStreamDecoder()
		var got strings.Builder
		for _, id := range ids {
			delta, err := d.Push(id)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(delta) {
				t.Fatalf("delta %q is not UTF-8", delta)
			}
			got.WriteString(delta)
		}
		got.WriteString(d.Flush())
		want, _ := tk.DecodeText(ids)
		if got.String() != want {
			t.Fatalf("ids %v: stream %q, DecodeText %q", ids, got.String(), want)
		}
	}
	ids := tk.Encode("𓀀")
	if len(ids) < 2 {
		t.Fatalf("𓀀 is one token %v; the hold-back case needs a split character", ids)
	}
	d := tk.NewStreamDecoder()
	if delta, _ := d.Push(ids[0]); delta != "" {
		t.Errorf("first fragment of 𓀀 gave %q, want it held back", delta)
	}
	if _, err := d.Push(tk.VocabSize()); err == nil {
		t.Error("out-of-range id: no error")
	}
}

func TestDecodeVariants(t *testing.T) {
	tk := builtin(t, Multilingual, DefaultLanguages)
	sp := tk.Specials()
	ids := append([]int{sp.SOT, 50259, sp.Transcribe, sp.TimestampBegin}, tk.Encode(" Hi")...)
	ids = append(ids, sp.TimestampBegin+54, sp.EOT)
	if got, _ := tk.Decode(ids); got != "<|startoftranscript|><|en|><|transcribe|> Hi<|endoftext|>" {
		t.Errorf("Decode = %q", got)
	}
	if got, _ := tk.DecodeWithTimestamps(ids); got != "<|startoftranscript|><|en|><|transcribe|><|0.00|> Hi<|1.08|><|endoftext|>" {
		t.Errorf("DecodeWithTimestamps = %q", got)
	}
	if got, _ := tk.DecodeText(ids); got != " Hi" {
		t.Errorf("DecodeText = %q", got)
	}
	if _, err := tk.Decode([]int{-1}); err == nil {
		t.Error("Decode(-1): no error")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
func itoa(i int) string   { return strconv.Itoa(i) }

// TestWriteTiktoken: the built-in vocabularies write back as Whisper's files,
// and a vocabulary read from Hugging Face files writes a file that reads back
// to the same tokenizer.
func TestWriteTiktoken(t *testing.T) {
	for name, src := range map[string]string{GPT2: gpt2Tiktoken, Multilingual: multilingualTiktoken} {
		var b strings.Builder
		if err := builtin(t, name, DefaultLanguages).WriteTiktoken(&b); err != nil {
			t.Fatal(err)
		}
		if b.String() != src {
			t.Errorf("%s: WriteTiktoken differs from the embedded file", name)
		}
	}
	hf, err := LoadHF(hfFixture(t, Multilingual))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := hf.WriteTiktoken(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ParseTiktoken(b.String(), "staged.tiktoken", hf.NumLanguages())
	if err != nil {
		t.Fatal(err)
	}
	text := "Überall 你好 🙂 it's"
	if back.Specials() != hf.Specials() || !reflect.DeepEqual(back.Encode(text), hf.Encode(text)) {
		t.Error("HF vocabulary written as tiktoken does not read back the same")
	}
}

func TestSplitWords(t *testing.T) {
	tk := builtin(t, Multilingual, DefaultLanguages)
	sp := tk.Specials()
	enc := func(s string) []int { return tk.Encode(s) }
	ids := append(append([]int{}, enc(" And so my fellow Americans, ask not")...), sp.TimestampBegin+10, sp.EOT)
	words, groups, err := tk.SplitWords(ids, "en")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{" And", " so", " my", " fellow", " Americans", ",", " ask", " not", "<|0.20|>", "<|endoftext|>"}
	if !reflect.DeepEqual(words, want) {
		t.Errorf("SplitWords(en) = %q, want %q", words, want)
	}
	var flat []int
	for _, g := range groups {
		flat = append(flat, g...)
	}
	if !reflect.DeepEqual(flat, ids) {
		t.Errorf("groups %v do not cover the ids %v", groups, ids)
	}
	// A character cut across tokens stays in one group; a word piece without a
	// leading space joins the word before it.
	hiero := enc(" 𓀀𓀁 unbelievably")
	words, groups, _ = tk.SplitWords(hiero, "en")
	if !reflect.DeepEqual(words, []string{" 𓀀𓀁", " unbelievably"}) || len(groups[0]) < 3 {
		t.Errorf("SplitWords(hieroglyphs) = %q %v", words, groups)
	}
	words, _, _ = tk.SplitWords(enc("我们今天去公园"), "zh")
	if strings.Join(words, "") != "我们今天去公园" || len(words) < 3 {
		t.Errorf("SplitWords(zh) = %q", words)
	}
	for _, w := range words {
		if !utf8.ValidString(w) || strings.ContainsRune(w, utf8.RuneError) {
			t.Errorf("zh word %q is not whole characters", w)
		}
	}
	// Ids that end in a cut-short character give it as U+FFFD (the whole
	// text has the replacement there too), as Whisper does.
	cut := enc(" ok 𓀀")
	if words, _, _ := tk.SplitWords(cut[:len(cut)-1], "en"); !reflect.DeepEqual(words, []string{" ok", " \ufffd"}) {
		t.Errorf("cut-short character gave words %q", words)
	}
}

// TestConcurrentUse: first use from many goroutines parses once and every
// caller gets the same tokenizer (run with -race by make test-tokenizer).
func TestConcurrentUse(t *testing.T) {
	const n = 8
	got := make(chan *Tokenizer, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			tk, err := ForVocabSize(51866)
			if err != nil {
				errs <- err
				return
			}
			if ids := tk.Encode(" concurrent 你好"); len(ids) == 0 {
				errs <- fmt.Errorf("no ids")
				return
			}
			got <- tk
		}()
	}
	var first *Tokenizer
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			t.Fatal(err)
		case tk := <-got:
			if first == nil {
				first = tk
			} else if tk != first {
				t.Fatal("two tokenizers for the same vocabulary")
			}
		}
	}
}

func TestPrompt(t *testing.T) {
	tk := builtin(t, Multilingual, DefaultLanguages)
	if got, want := tk.EncodePrompt("\n  And so my fellow Americans \x1f"), tk.Encode(" And so my fellow Americans"); !reflect.DeepEqual(got, want) {
		t.Errorf("EncodePrompt = %v, want %v", got, want)
	}
	if tk.EncodePrompt(" \t ") != nil || tk.PromptPrefix(nil, 448) != nil {
		t.Error("an empty prompt gives ids")
	}
	long := make([]int, 300)
	for i := range long {
		long[i] = i
	}
	p := tk.PromptPrefix(long, 448)
	if len(p) != 224 || p[0] != tk.Specials().SOTPrev || p[1] != 300-223 || p[223] != 299 {
		t.Errorf("PromptPrefix kept %d ids starting %v", len(p), p[:2])
	}
}
