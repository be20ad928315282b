package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

// tinyHF is a small Whisper-shaped vocabulary in Hugging Face's layouts: the
// first n tokens of the .en fixture (256 bytes and n-256 merges) and
// Whisper's 1,608 special tokens after them.
type tinyHF struct {
	vocab   map[string]int
	merges  []string
	added   map[string]int
	eot     int
	rawJSON map[string]any
}

func newTinyHF(t testing.TB, n int) *tinyHF {
	t.Helper()
	fx := hfFixture(t, GPT2)
	var full map[string]int
	if err := json.Unmarshal(fx[HFVocabJSON].Data, &full); err != nil {
		t.Fatal(err)
	}
	h := &tinyHF{vocab: map[string]int{}, added: map[string]int{}, eot: n}
	for tok, id := range full {
		if id < n {
			h.vocab[tok] = id
		}
	}
	lines := strings.Split(string(fx[HFMergesTXT].Data), "\n")
	h.merges = lines[1 : 1+n-256]
	layout, err := newTokenizer(&vocab{offs: make([]uint32, n+1)}, "layout", DefaultLanguages)
	if err != nil {
		t.Fatal(err)
	}
	for id := n; id < layout.VocabSize(); id++ {
		h.added[layout.specialText(id)] = id
	}
	return h
}

func (h *tinyHF) files() (vocabJSON, mergesTXT, addedJSON []byte) {
	vocabJSON, _ = json.Marshal(h.vocab)
	mergesTXT = []byte("#version: 0.2\n" + strings.Join(h.merges, "\n") + "\n")
	addedJSON, _ = json.Marshal(h.added)
	return
}

func (h *tinyHF) tokenizerJSON() []byte {
	var added []map[string]any
	for content, id := range h.added {
		added = append(added, map[string]any{"id": id, "content": content, "special": true})
	}
	doc := map[string]any{
		"version":        "1.0",
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel"},
		"model":          map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "vocab": h.vocab, "merges": h.merges},
	}
	for k, v := range h.rawJSON {
		doc[k] = v
	}
	data, _ := json.Marshal(doc)
	return data
}

func TestHFTiny(t *testing.T) {
	h := newTinyHF(t, 400)
	v, m, a := h.files()
	for name, load := range map[string]func() (*Tokenizer, error){
		"vocab+merges":   func() (*Tokenizer, error) { return ParseHFVocabMerges(v, m, a) },
		"tokenizer.json": func() (*Tokenizer, error) { return ParseHFTokenizerJSON(h.tokenizerJSON()) },
	} {
		tk, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tk.Specials().EOT != 400 || tk.VocabSize() != 400+1608 {
			t.Errorf("%s: eot %d, %d ids", name, tk.Specials().EOT, tk.VocabSize())
		}
		// With the first 400 ranks only, merging stops early but must still
		// agree with the full vocabulary restricted to ranks below 400.
		text := " the in and on at an er"
		ids := tk.Encode(text)
		if got, _ := tk.Decode(ids); got != text {
			t.Errorf("%s: round trip %q", name, got)
		}
		for _, id := range ids {
			if id >= 400 {
				t.Errorf("%s: id %d beyond the tiny vocabulary", name, id)
			}
		}
	}
}

// TestHFErrors: each broken file gives an error naming the file and what is wrong.
func TestHFErrors(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(h *tinyHF)
		files string // "json" or "slow"
		want  []string
	}{
		{"merges out of rank order", func(h *tinyHF) { h.merges[3], h.merges[4] = h.merges[4], h.merges[3] }, "slow", []string{"merges.txt", "merges must follow the ids"}},
		{"missing merge", func(h *tinyHF) { h.merges = h.merges[1:] }, "json", []string{"tokenizer.json", "143 merges for 144 multi-byte tokens"}},
		{"merge of unknown tokens", func(h *tinyHF) { h.merges[0] = "zq xj" }, "slow", []string{"merges.txt", `"zq" "xj"`, "not in the vocabulary"}},
		{"character outside the byte alphabet", func(h *tinyHF) { delete(h.vocab, "Ġt"); h.vocab["\u4e2d"] = 256 }, "slow", []string{"vocab.json", `"中"`, "U+4E2D", "byte-to-unicode"}},
		{"gap in ids", func(h *tinyHF) { delete(h.vocab, "Ġt") }, "json", []string{"tokenizer.json", "every id from 0 to 399 needs one"}},
		{"special out of place", func(h *tinyHF) { h.added["<|de|>"], h.added["<|zh|>"] = h.added["<|zh|>"], h.added["<|de|>"] }, "slow", []string{"added_tokens.json", `"<|de|>" has id 403`, `puts "<|zh|>" at id 403`}},
		{"extra added token", func(h *tinyHF) { h.added["<|custom|>"] = 9999 }, "json", []string{"tokenizer.json", "1609 added tokens", "has 1608"}},
		{"wrong model", func(h *tinyHF) { h.rawJSON = map[string]any{"model": map[string]any{"type": "WordPiece"}} }, "json", []string{"tokenizer.json", `model type "WordPiece"`}},
		{"prefix space", func(h *tinyHF) {
			h.rawJSON = map[string]any{"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": true}}
		}, "json", []string{"tokenizer.json", "pre_tokenizer", "add_prefix_space false"}},
		{"normalizer", func(h *tinyHF) { h.rawJSON = map[string]any{"normalizer": map[string]any{"type": "NFC"}} }, "json", []string{"tokenizer.json", "normalizer"}},
	}
	for _, c := range cases {
		h := newTinyHF(t, 400)
		c.edit(h)
		var err error
		if c.files == "json" {
			_, err = ParseHFTokenizerJSON(h.tokenizerJSON())
		} else {
			_, err = ParseHFVocabMerges(h.files())
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	if _, err := LoadHF(fstest.MapFS{"vocab.json": {Data: []byte("{}")}}); err == nil || !strings.Contains(err.Error(), "merges.txt") {
		t.Errorf("missing merges.txt: %v", err)
	}
	if HasHFTokenizer(fstest.MapFS{"vocab.json": {Data: []byte("{}")}}) {
		t.Error("vocab.json alone counts as a tokenizer")
	}
}

// The Sequence form newer converters write is accepted too.
func TestHFSequencePreTokenizer(t *testing.T) {
	h := newTinyHF(t, 300)
	h.rawJSON = map[string]any{"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": gpt2Pattern}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
	}}}
	if _, err := ParseHFTokenizerJSON(h.tokenizerJSON()); err != nil {
		t.Fatal(err)
	}
	h.rawJSON["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"Regex": `\s+`}
	if _, err := ParseHFTokenizerJSON(h.tokenizerJSON()); err == nil {
		t.Fatal("another split pattern: no error")
	}
}

// FuzzParseHFTokenizerJSON: any input is parsed or refused, never a panic;
// what parses round-trips text.
func FuzzParseHFTokenizerJSON(f *testing.F) {
	h := newTinyHF(f, 300)
	f.Add(h.tokenizerJSON())
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[["a","a"]]},"added_tokens":[{"id":1,"content":"<|endoftext|>"}]}`))
	f.Add([]byte(`{"model":{"type":"BPE","merges":["a"]}}`))
	f.Add([]byte(`{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":1}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := ParseHFTokenizerJSON(data)
		if err != nil {
			return
		}
		roundTrip(t, tk, "fuzz ok ünï 中 🙂")
	})
}

// FuzzParseHFVocabMerges is the same for vocab.json + merges.txt + added_tokens.json.
func FuzzParseHFVocabMerges(f *testing.F) {
	h := newTinyHF(f, 300)
	v, m, a := h.files()
	f.Add(v, m, a)
	f.Add([]byte(`{"a":0,"b":1}`), []byte("#version: 0.2\na b\n"), []byte(`{"<|endoftext|>":2}`))
	f.Add([]byte(`{"Ā":-1}`), []byte("a\n"), []byte(`[]`))
	f.Fuzz(func(t *testing.T, vocabJSON, mergesTXT, addedJSON []byte) {
		tk, err := ParseHFVocabMerges(vocabJSON, mergesTXT, addedJSON)
		if err != nil {
			return
		}
		roundTrip(t, tk, "fuzz ok ünï 中 🙂")
	})
}

func roundTrip(t *testing.T, tk *Tokenizer, text string) {
	t.Helper()
	ids := tk.Encode(text)
	got, err := tk.Decode(ids)
	if err != nil || got != text {
		t.Fatalf("round trip %q → %v → %q, %v", text, ids, got, err)
	}
}

// FuzzEncodeDecode: for any string, the ids' bytes are the string, the
// heap merge agrees with the scan, and the stream decoder's deltas are whole
// UTF-8 adding up to DecodeText.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"Hello world", "a  b\n\n c", "中文 🙂 👨‍👩‍👧", "\xe4\xb8\xff x", "I'm they'll", strings.Repeat("ab", 100)} {
		f.Add(s)
	}
	tks := []*Tokenizer{builtin(f, GPT2, DefaultLanguages), builtin(f, Multilingual, MaxLanguages)}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tk := range tks {
			ids := tk.Encode(s)
			if got := tokenBytes(t, tk, ids); got != s {
				t.Fatalf("%s: bytes of Encode(%q) = %q", tk.Name(), s, got)
			}
			want, err := tk.DecodeText(ids)
			if err != nil || want != ValidUTF8(s) {
				t.Fatalf("%s: DecodeText(Encode(%q)) = %q, %v", tk.Name(), s, want, err)
			}
			splitPieces(s, func(p string) {
				if len(p) > 1 {
					if a, b := tk.v.mergeScan(nil, p[:min(len(p), heapMergeMin)]), tk.v.mergeHeap(nil, p[:min(len(p), heapMergeMin)]); fmt.Sprint(a) != fmt.Sprint(b) {
						t.Fatalf("%s: piece %q: scan %v, heap %v", tk.Name(), p, a, b)
					}
				}
			})
			d := tk.NewStreamDecoder()
			var got strings.Builder
			for _, id := range ids {
				delta, err := d.Push(id)
				if err != nil {
					t.Fatal(err)
				}
				if !isValidUTF8(delta) {
					t.Fatalf("%s: delta %q is not UTF-8", tk.Name(), delta)
				}
				got.WriteString(delta)
			}
			if got.WriteString(d.Flush()); got.String() != want {
				t.Fatalf("%s: stream %q, DecodeText %q", tk.Name(), got.String(), want)
			}
		}
	})
}

func isValidUTF8(s string) bool { return utf8.ValidString(s) }

// TestHFWhisperSized: a vocabulary the size of Whisper's must be Whisper's
// (and then shares the built-in tables); the empty token may be left out.
func TestHFWhisperSized(t *testing.T) {
	fx := hfFixture(t, Multilingual)
	var vocab map[string]int
	if err := json.Unmarshal(fx[HFVocabJSON].Data, &vocab); err != nil {
		t.Fatal(err)
	}
	load := func() (*Tokenizer, error) {
		data, _ := json.Marshal(vocab)
		return ParseHFVocabMerges(data, fx[HFMergesTXT].Data, fx[HFAddedTokenJSON].Data)
	}
	if id, ok := vocab[""]; !ok || id != 50256 {
		t.Fatalf("fixture: empty token %d, %v", id, ok)
	}
	delete(vocab, "")
	tk, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if tk.v != builtin(t, Multilingual, DefaultLanguages).v {
		t.Error("a Whisper-sized HF vocabulary does not share the built-in tables")
	}
	vocab["ĠHello"], vocab["Ġworld"] = vocab["Ġworld"], vocab["ĠHello"]
	if _, err := load(); err == nil || !strings.Contains(err.Error(), "where Whisper's multilingual vocabulary has") {
		t.Errorf("swapped tokens: %v", err)
	}
}
