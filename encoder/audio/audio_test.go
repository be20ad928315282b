package audio

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtures = "../../testdata/audio"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeFixturesAgree decodes one second of jfk rendered by sox into every
// container and encoding: 24-bit FLAC, 24-bit WAV and float32 WAV must give
// identical samples, 16-bit WAV the same to within its rounding.
func TestDecodeFixturesAgree(t *testing.T) {
	ref, err := Decode(readFixture(t, "jfk_1s_s24.flac"), FormatUnknown, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Rate != 44100 || ref.Channels != 2 || ref.Frames() != 44100 {
		t.Fatalf("flac: rate %d channels %d frames %d, want 44100 2 44100", ref.Rate, ref.Channels, ref.Frames())
	}
	for _, tc := range []struct {
		file string
		tol  float64
	}{
		{"jfk_1s_s24.wav", 0},
		{"jfk_1s_f32.wav", 0},
		{"jfk_1s_s16.wav", 0.5/(1<<15) + 1.0/(1<<23)},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := Decode(readFixture(t, tc.file), FormatUnknown, 0)
			if err != nil {
				t.Fatal(err)
			}
			if c.Rate != ref.Rate || c.Channels != ref.Channels || len(c.Samples) != len(ref.Samples) {
				t.Fatalf("rate %d channels %d samples %d, want %d %d %d", c.Rate, c.Channels, len(c.Samples), ref.Rate, ref.Channels, len(ref.Samples))
			}
			var worst float64
			for i, v := range c.Samples {
				worst = math.Max(worst, math.Abs(float64(v-ref.Samples[i])))
			}
			if worst > tc.tol {
				t.Errorf("max |difference| from the 24-bit FLAC %g, want ≤ %g", worst, tc.tol)
			}
		})
	}
}

// TestDecodeJFK decodes Whisper's own test clip (24-bit stereo FLAC); the
// decoder checks every frame CRC and the STREAMINFO MD5 of the audio.
func TestDecodeJFK(t *testing.T) {
	data, err := os.ReadFile("../../../shared/data/whisper/jfk.flac")
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeFLAC(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rate != 44100 || c.Channels != 2 || c.Frames() != 485100 {
		t.Fatalf("rate %d channels %d frames %d, want 44100 2 485100 (soxi)", c.Rate, c.Channels, c.Frames())
	}
	mono, err := Load(data, FormatFLAC, 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	if want := 176000; len(mono) != want {
		t.Errorf("16 kHz mono: %d samples, want %d", len(mono), want)
	}
	if _, err := Load(data, FormatFLAC, 0, 10); err == nil || !strings.Contains(err.Error(), "11.00 s long, limit is 10 s") {
		t.Errorf("duration limit: err %v, want one naming 11.00 s and the 10 s limit", err)
	}
}

func TestMono(t *testing.T) {
	c := Clip{Rate: 8000, Channels: 2, Samples: []float32{1, 0, 0.5, -0.5, -1, -1}}
	got := c.Mono()
	want := []float32{0.5, 0, -1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Mono = %v, want %v", got, want)
		}
	}
}

func TestPCM16(t *testing.T) {
	data := []byte{0x00, 0x80, 0xff, 0x7f, 0x00, 0x00, 0x00, 0x40}
	c, err := Decode(data, FormatPCM16, 16000)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{-1, 32767.0 / 32768, 0, 0.5}
	for i := range want {
		if c.Samples[i] != want[i] {
			t.Fatalf("samples %v, want %v", c.Samples, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{
		"wav": FormatWAV, "audio/x-wav": FormatWAV, "audio/flac": FormatFLAC,
		"audio/L16; rate=16000": FormatPCM16, "": FormatUnknown,
	} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseFormat("audio/mpeg"); err == nil {
		t.Error("ParseFormat(audio/mpeg): no error")
	}
}

// TestDecodeBadInput feeds broken files; each must fail with an error that
// says what was wrong.
func TestDecodeBadInput(t *testing.T) {
	wav := readFixture(t, "jfk_1s_s16.wav")
	flac := readFixture(t, "jfk_1s_s24.flac")
	lyingData := patch(wav, 40, 4, uint32(len(wav))) // data chunk claims more than the file holds
	lyingRIFF := patch(wav, 4, 4, uint32(len(wav)*2))
	badBits := patch(wav, 34, 2, 12)
	badTag := patch(wav, 20, 2, 2) // ADPCM
	oddData := patch(wav[:len(wav)-1], 40, 4, uint32(len(wav)-45))
	oddData = patch(oddData, 4, 4, uint32(len(oddData)-8))
	corrupt := append([]byte(nil), flac...)
	corrupt[len(corrupt)/2] ^= 0x55
	for _, tc := range []struct {
		name   string
		data   []byte
		format Format
		rate   int
		want   string
	}{
		{"empty", nil, FormatUnknown, 0, "empty input"},
		{"unknown magic", []byte("ID4 hello world"), FormatUnknown, 0, "unrecognised data"},
		{"wav header lies about data length", lyingData, FormatUnknown, 0, "lies about its length"},
		{"wav RIFF size lies", lyingRIFF, FormatUnknown, 0, "RIFF header claims"},
		{"wav truncated", wav[:1000], FormatUnknown, 0, "truncated"},
		{"wav 12-bit", badBits, FormatUnknown, 0, "12 bits per sample"},
		{"wav adpcm", badTag, FormatUnknown, 0, "format tag 0x0002"},
		{"wav partial frame", oddData, FormatUnknown, 0, "not a multiple of the 4-byte sample frame"},
		{"wav declared but flac", flac, FormatWAV, 0, "not a RIFF/WAVE file"},
		{"flac truncated", flac[:len(flac)/2], FormatUnknown, 0, "flac: "},
		{"flac corrupt byte", corrupt, FormatUnknown, 0, "flac: "},
		{"flac header only", flac[:20], FormatUnknown, 0, "flac: stream header"},
		{"pcm16 no rate", []byte{1, 2}, FormatPCM16, 0, "must declare its rate"},
		{"pcm16 odd length", []byte{1, 2, 3}, FormatPCM16, 16000, "not a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.data, tc.format, tc.rate)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// patch returns a copy of b with a little-endian value written at off.
func patch(b []byte, off, size int, v uint32) []byte {
	c := append([]byte(nil), b...)
	if size == 2 {
		binary.LittleEndian.PutUint16(c[off:], uint16(v))
	} else {
		binary.LittleEndian.PutUint32(c[off:], v)
	}
	return c
}

func TestEncodeWAV16RoundTrip(t *testing.T) {
	in := Clip{Rate: 16000, Channels: 1, Samples: []float32{0, 0.25, -0.5, 32767.0 / 32768}}
	out, err := DecodeWAV(EncodeWAV16(in))
	if err != nil {
		t.Fatal(err)
	}
	for i := range in.Samples {
		if out.Samples[i] != in.Samples[i] {
			t.Fatalf("round trip %v, want %v", out.Samples, in.Samples)
		}
	}
}

// FuzzDecode is the WAV/FLAC entry point the server exposes; it must never
// panic and must return either samples consistent with the header or an error.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"jfk_1s_s16.wav", "jfk_1s_s24.flac"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
	}
	f.Add(EncodeWAV16(Clip{Rate: 16000, Channels: 1, Samples: make([]float32, 16)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data, FormatUnknown, 0)
		if err != nil {
			return
		}
		if c.Channels < 1 || c.Rate < 1 || len(c.Samples)%c.Channels != 0 {
			t.Fatalf("decoded clip with rate %d, %d channels, %d samples", c.Rate, c.Channels, len(c.Samples))
		}
	})
}

// TestFloatWAVFiniteness: a NaN or infinite float sample is refused with its
// position; finite samples outside [-1, 1] are clipped as ffmpeg does.
func TestFloatWAVFiniteness(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  float32
		want string
	}{
		{"NaN", float32(math.NaN()), "sample NaN in frame 5, channel 1"},
		{"+Inf", float32(math.Inf(1)), "sample +Inf in frame 5, channel 1"},
		{"-Inf", float32(math.Inf(-1)), "sample -Inf in frame 5, channel 1"},
	} {
		s := make([]float32, 16)
		s[11] = tc.bad
		if _, err := Load(EncodeWAVFloat32(Clip{Rate: 8000, Channels: 2, Samples: s}), FormatUnknown, 0, 60); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	c, err := DecodeWAV(EncodeWAVFloat32(Clip{Rate: 8000, Channels: 1, Samples: []float32{3e38, -2, 0.5}}))
	if err != nil || c.Samples[0] != 1 || c.Samples[1] != -1 || c.Samples[2] != 0.5 {
		t.Errorf("clipping: %v, %v, want [1 -1 0.5]", c.Samples, err)
	}
}

// FuzzLoad is what the server runs on a request's audio: Probe, then Load.
// Neither may panic; Load succeeds only on input whose header Probe reads,
// and returns no more 16 kHz samples than the header's length allows.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"jfk_1s_s16.wav", "jfk_1s_s24.flac"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
	}
	f.Add(EncodeWAVFloat32(Clip{Rate: 44100, Channels: 3, Samples: make([]float32, 30)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, perr := Probe(data, FormatUnknown, 0)
		samples, err := Load(data, FormatUnknown, 0, 60)
		if err != nil {
			return
		}
		if perr != nil {
			t.Fatalf("Load succeeded where Probe failed: %v", perr)
		}
		if h.Frames >= 0 && int64(len(samples)) > (h.Frames*SampleRate+int64(h.Rate)-1)/int64(h.Rate) {
			t.Fatalf("%d samples at 16 kHz from a header of %d frames at %d Hz", len(samples), h.Frames, h.Rate)
		}
	})
}
