package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"
	"time"
)

// The reference: testdata/tokenizer/golden.json, made by golden.mjs from
// js-tiktoken and @huggingface/tokenizers (which agree on every case).
const goldenDir = "../../testdata/tokenizer"

type goldenFile struct {
	References   map[string]string `json:"references"`
	Vocabularies map[string]struct {
		NumLanguages int `json:"num_languages"`
		Cases        []struct {
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
			HF   bool   `json:"hf"`
		} `json:"cases"`
		Decodes []struct {
			IDs  []int  `json:"ids"`
			Text string `json:"text"`
		} `json:"decodes"`
	} `json:"vocabularies"`
}

func readGolden(t *testing.T, data []byte) goldenFile {
	t.Helper()
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("golden JSON: %v", err)
	}
	if len(g.Vocabularies) != 2 {
		t.Fatalf("golden JSON has %d vocabularies, want gpt2 and multilingual", len(g.Vocabularies))
	}
	return g
}

// checkGolden compares tk (and, for the HF-readable cases, hf) with the reference.
func checkGolden(t *testing.T, g goldenFile, tokenizers func(name string, langs int) (tk, hf *Tokenizer)) {
	t.Helper()
	for name, voc := range g.Vocabularies {
		tk, hf := tokenizers(name, voc.NumLanguages)
		nHF := 0
		for _, c := range voc.Cases {
			if got := tk.Encode(c.Text); !equalIDs(got, c.IDs) {
				t.Errorf("%s Encode(%q) = %v, reference %v", name, c.Text, got, c.IDs)
			}
			if got, err := tk.Decode(c.IDs); err != nil || got != c.Text {
				t.Errorf("%s Decode(reference ids of %q) = %q, %v", name, c.Text, got, err)
			}
			if hf != nil && c.HF {
				nHF++
				if got := hf.Encode(c.Text); !equalIDs(got, c.IDs) {
					t.Errorf("%s via Hugging Face files: Encode(%q) = %v, reference %v", name, c.Text, got, c.IDs)
				}
			}
		}
		for _, d := range voc.Decodes {
			if got, err := tk.Decode(d.IDs); err != nil || got != d.Text {
				t.Errorf("%s Decode(%v) = %q, %v; reference %q", name, d.IDs, got, err, d.Text)
			}
		}
		if len(voc.Cases) < 400 || len(voc.Decodes) < 50 || (hf != nil && nHF < 400) {
			t.Errorf("%s: only %d cases (%d via HF), %d decodes", name, len(voc.Cases), nHF, len(voc.Decodes))
		}
	}
}

func equalIDs(a, b []int) bool { return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b)) }

// hfFixture reads the Hugging Face files golden.mjs wrote for a vocabulary.
func hfFixture(t testing.TB, name string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range []string{HFTokenizerJSON, HFVocabJSON, HFMergesTXT, HFAddedTokenJSON} {
		raw, err := os.ReadFile(filepath.Join(goldenDir, "hf", name, f+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		fsys[f] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// TestGoldenTiktokenAndHF: the built-in vocabularies, the tokenizer.json
// reader and the vocab.json + merges.txt reader all give the reference ids.
func TestGoldenTiktokenAndHF(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(goldenDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	g := readGolden(t, data)
	for _, layout := range []string{"tokenizer.json", "vocab.json+merges.txt"} {
		t.Run(layout, func(t *testing.T) {
			checkGolden(t, g, func(name string, langs int) (*Tokenizer, *Tokenizer) {
				fsys := hfFixture(t, name)
				if layout != "tokenizer.json" {
					delete(fsys, HFTokenizerJSON)
				}
				hf, err := LoadHF(fsys)
				if err != nil {
					t.Fatal(err)
				}
				tk := builtin(t, name, langs)
				if hf.Specials() != tk.Specials() || hf.VocabSize() != tk.VocabSize() || hf.NumLanguages() != tk.NumLanguages() {
					t.Fatalf("%s via %s: specials %+v (%d ids), built-in %+v (%d ids)", name, layout, hf.Specials(), hf.VocabSize(), tk.Specials(), tk.VocabSize())
				}
				return tk, hf
			})
		})
	}
}

// TestGoldenLive regenerates the reference with node and compares with it,
// when testdata/tokenizer/node_modules is installed (make tokenizer-golden).
func TestGoldenLive(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the node reference takes ~10 s")
	}
	if _, err := os.Stat(filepath.Join(goldenDir, "node_modules", "js-tiktoken")); err != nil {
		t.Skip("testdata/tokenizer/node_modules not installed (cd testdata/tokenizer && npm ci)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	if _, err := os.Stat("../../../shared/data/whisper/gpt2.tiktoken"); err != nil {
		t.Skipf("reference data not here (%v)", err)
	}
	cmd := exec.Command(node, "golden.mjs", "print")
	cmd.Dir = goldenDir
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node golden.mjs print: %v", err)
	}
	t.Logf("node reference: %d bytes in %v", len(out), time.Since(start).Round(time.Millisecond))
	g := readGolden(t, out)
	checkGolden(t, g, func(name string, langs int) (*Tokenizer, *Tokenizer) { return builtin(t, name, langs), nil })
}
