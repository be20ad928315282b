package decoder

import (
	"slices"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// The decoder loaded from the staged whole model gives the same logits,
// bit for bit, as the one loaded from the Hugging Face directory it was
// staged from; an encoder-only entry has no decoder to load.
func TestLoadStaged(t *testing.T) {
	dir, err := converttest.Micro(microDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := staged.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	o := Options{Threads: 2}
	d, err := LoadStaged(m, o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := readCheck(t, microCheck)
	got, want := decodeStaggered(t, d, c), decodeStaggered(t, load(t, microDir, o), c)
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("sequence %d: logits of the staged decoder differ from the Hugging Face directory's", i)
		}
	}

	enc, err := converttest.Demo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	em, err := staged.Open(enc)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if _, err := LoadStaged(em, o); err == nil || !strings.Contains(err.Error(), "no decoder") || !strings.Contains(err.Error(), "[encode]") {
		t.Errorf("encoder-only entry: %v, want an error naming what it can do", err)
	}
}
