package audiotest

import (
	"runtime"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
)

// allocated is the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestFLACBomb: the bomb is real (it decodes to what its header says), its
// header tells what decoding it costs without decoding it. (The server's
// peak RSS under bombs is tested in cmd/whisper-encoder.)
func TestFLACBomb(t *testing.T) {
	b, err := FLACBomb(96000, 8, 20)
	if err != nil {
		t.Fatal(err)
	}
	c, err := audio.DecodeFLAC(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Channels != 8 || c.Rate != 96000 || c.Seconds() != 20 {
		t.Fatalf("decoded %d channels at %d Hz, %.2f s", c.Channels, c.Rate, c.Seconds())
	}
	big := WithFLACLength(b, 600*96000) // FLACBomb(96000, 8, 600) has this header (33 KB; slow to make under -race)
	var h audio.Header
	probe := allocated(func() { h, err = audio.Probe(big, audio.FormatUnknown, 0) })
	if err != nil || h.Rate != 96000 || h.Channels != 8 || h.Frames != 600*96000 {
		t.Fatalf("Probe of a 600 s bomb: %+v, %v", h, err)
	}
	if probe > 1<<20 {
		t.Errorf("Probe allocated %d bytes, want < 1 MiB (no decoding)", probe)
	}
	t.Logf("its header declares %.0f s of 8 × 96 kHz (%.2f GB as interleaved float32); Load would take %.0f MB", h.Seconds(),
		float64(h.Frames*int64(h.Channels)*4)/1e9, float64(h.LoadBytes(600))/1e6)

}
