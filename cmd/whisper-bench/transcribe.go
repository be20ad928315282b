package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

type benchTranscribeFlags struct {
	model, audioPath, concurrency *string
	seconds                       *float64
	maxTokens, threads, maxBatch  *int
	maxEncodes                    *int
	decodeMemory                  *int64
	force, timestamps             *bool
}

// runBenchTranscribe measures whole transcriptions (encoder, decoder,
// Whisper's rules, continuous batching) of one clip repeated to a length,
// by concurrent requests.
func runBenchTranscribe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("transcribe", flag.ContinueOnError)
	f := benchTranscribeFlags{
		model:        fs.String("model", "", "Hugging Face model directory with onnx/encoder_model.onnx (testdata/gen/gen_whisper_hf.py writes one)"),
		audioPath:    fs.String("audio", "testdata/mel/jfk_16k.wav", "audio file (WAV, FLAC), repeated to --seconds"),
		concurrency:  fs.String("concurrency", "1,4,16", "comma-separated numbers of concurrent requests"),
		seconds:      fs.Float64("seconds", 60, "seconds of audio per request"),
		maxTokens:    fs.Int("max-tokens", 224, "tokens sampled per window"),
		threads:      fs.Int("threads", 0, "worker threads of encoder and decoder (default GOMAXPROCS)"),
		maxBatch:     fs.Int("max-batch", 32, "most sequences one decoder step advances"),
		maxEncodes:   fs.Int("max-encodes", 2, "most windows encoded at once (0: unbounded)"),
		decodeMemory: fs.Int64("decode-memory", transcribe.DefaultDecodeMemory, "bytes of decoder state (cross K/V, self-attention caches) of the windows decoded at once, as serve --decode-memory"),
		force:        fs.Bool("force", true, "every window samples exactly --max-tokens tokens (random weights cannot shorten the work)"),
		timestamps:   fs.Bool("timestamps", true, "decode with timestamps (segments; seek by the last timestamp)"),
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *f.model == "" || fs.NArg() > 0 || *f.seconds <= 0 || *f.maxTokens < 1 || *f.decodeMemory < 1 {
		return usageError{errors.New("want --model, no arguments, --seconds > 0, --max-tokens ≥ 1 and --decode-memory ≥ 1 (see -h)")}
	}
	var conc []int
	for _, s := range strings.Split(*f.concurrency, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return usageError{fmt.Errorf("--concurrency: %q is not a count ≥ 1", s)}
		}
		conc = append(conc, c)
	}
	pcm, err := benchAudio(*f.audioPath, *f.seconds)
	if err != nil {
		return err
	}
	tr, enc, closeAll, err := loadTranscriber(ctx, *f.model, *f.threads, *f.maxBatch, *f.maxEncodes, *f.decodeMemory)
	if err != nil {
		return err
	}
	defer closeAll()
	fmt.Printf("machine: %s, %d CPUs, load average %s\n", cpuModel(), runtime.NumCPU(), loadAvg())
	fmt.Printf("audio: %s repeated to %.0f s a request; greedy (temperature 0 only), language en, %d tokens a window%s, timestamps %v\n",
		*f.audioPath, *f.seconds, *f.maxTokens, map[bool]string{true: " (forced)", false: " at most"}[*f.force], *f.timestamps)
	o := transcribe.Options{Language: "en", Temperatures: []float64{0}, MaxTokens: *f.maxTokens, ForceTokens: *f.force, WithoutTimestamps: !*f.timestamps}
	loaded := resetPeakRSS()
	fmt.Printf("after load: RSS %.1f MB (peak while loading %.1f MB: the fp32 safetensors and the ONNX staging; serve maps staged BF16 instead)\n", loaded.rss, loaded.peak)
	for _, c := range conc {
		if err := benchConcurrent(ctx, tr, enc, pcm, o, c); err != nil {
			return fmt.Errorf("concurrency %d: %w", c, err)
		}
	}
	limit, _, _, peakBytes, peakWindows := tr.DecodeMemory()
	fmt.Printf("decode memory: peak %.1f MB in %d windows at once (budget %.1f MB)\n", float64(peakBytes)/1e6, peakWindows, float64(limit)/1e6)
	rss := readRSS()
	fmt.Printf("peak RSS: %.1f MB (VmHWM since the load)\n", rss.peak)
	return nil
}

// resetPeakRSS collects garbage, returns the memory the load left to the
// OS, and restarts the peak resident set (VmHWM) from the current one, so
// the peak reported after the runs is theirs; it returns the stats before
// the reset.
func resetPeakRSS() rssStat {
	runtime.GC()
	debug.FreeOSMemory()
	r := readRSS()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Printf("note: the peak RSS could not be reset (%v): it includes the load\n", err)
	}
	return r
}

// benchConcurrent runs c transcriptions of pcm at once and reports.
func benchConcurrent(ctx context.Context, tr *transcribe.Transcriber, enc *timedEncoder, pcm []float32, o transcribe.Options, c int) error {
	steps0, rows0, _ := tr.BatchStats()
	win0, nanos0 := enc.windows.Load(), enc.nanos.Load()
	errs := make([]error, c)
	windows := make([]int, c)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range c {
		wg.Go(func() {
			seen := map[int]bool{}
			_, errs[i] = tr.Transcribe(ctx, pcm, o, func(s transcribe.Segment) error { seen[s.Seek] = true; return nil })
			windows[i] = len(seen)
		})
	}
	wg.Wait()
	wall := time.Since(t0).Seconds()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	steps, rows, largest := tr.BatchStats()
	steps, rows = steps-steps0, rows-rows0
	total := 0
	for _, w := range windows {
		total += w
	}
	audioS := float64(len(pcm)) / transcribe.SampleRate * float64(c)
	fmt.Printf("concurrency %2d: %.1f s wall for %.0f s of audio (realtime factor %.1fx), %d windows with segments, %d decoder steps of %d sequence rows (mean batch %.1f, largest so far %d): %.0f tokens/s\n",
		c, wall, audioS, audioS/wall, total, steps, rows, float64(rows)/float64(max(steps, 1)), largest, float64(rows)/wall)
	fmt.Printf("               encoder: %d windows, %.1f s inside EncodeWindow (summed over concurrent calls)\n",
		enc.windows.Load()-win0, float64(enc.nanos.Load()-nanos0)/1e9)
	return nil
}

// timedEncoder counts the windows encoded and the wall time spent in them
// (overlapping calls add up).
type timedEncoder struct {
	inner   transcribe.WindowEncoder
	windows atomic.Int64
	nanos   atomic.Int64
}

func (e *timedEncoder) EncodeWindow(ctx context.Context, logMel []float32) ([]float32, int, error) {
	t0 := time.Now()
	h, p, err := e.inner.EncodeWindow(ctx, logMel)
	e.nanos.Add(int64(time.Since(t0)))
	e.windows.Add(1)
	return h, p, err
}

// benchAudio loads a clip and repeats it to seconds.
func benchAudio(path string, seconds float64) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	clip, err := audio.Load(b, audio.FormatUnknown, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n := int(seconds * transcribe.SampleRate)
	pcm := make([]float32, 0, n)
	for len(pcm) < n {
		pcm = append(pcm, clip[:min(len(clip), n-len(pcm))]...)
	}
	return pcm, nil
}

// loadTranscriber stages dir's encoder into a temporary cache and loads
// the whole model.
func loadTranscriber(ctx context.Context, dir string, threads, maxBatch, maxEncodes int, decodeMemory int64) (*transcribe.Transcriber, *timedEncoder, func(), error) {
	tk, err := tokenizer.LoadHF(os.DirFS(dir))
	if err != nil {
		return nil, nil, nil, err
	}
	gen, err := transcribe.ReadGenerationConfig(dir, tk)
	if err != nil {
		return nil, nil, nil, err
	}
	cache, err := os.MkdirTemp("", "whisper-bench-transcribe-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer os.RemoveAll(cache)
	st, err := convert.Stage(ctx, convert.Options{Source: filepath.Join(dir, "onnx", "encoder_model.onnx"), CacheDir: cache, NoSync: true})
	if err != nil {
		return nil, nil, nil, err
	}
	enc, err := model.Load(st.Dir, model.Options{Threads: threads})
	if err != nil {
		return nil, nil, nil, err
	}
	dec, err := decoder.LoadHF(dir, decoder.Options{Threads: threads})
	if err != nil {
		_ = enc.Close() // always nil: model.Encoder.Close frees memory
		return nil, nil, nil, err
	}
	timed := &timedEncoder{inner: transcribe.ModelEncoder{Encoder: enc}}
	tr, err := transcribe.New(transcribe.Config{Encoder: timed, Decoder: dec, Tokenizer: tk,
		Generation: gen, NMels: enc.Config().NumMelBins, MaxBatch: maxBatch, MaxEncodes: maxEncodes, DecodeMemory: decodeMemory})
	if err != nil {
		dec.Close()
		_ = enc.Close() // always nil: model.Encoder.Close frees memory
		return nil, nil, nil, err
	}
	fmt.Printf("model: %s; encoder %s, decoder %s\n", dir, enc.Backend(), dec.Backend())
	return tr, timed, func() { tr.Close(); dec.Close(); _ = enc.Close() }, nil // enc.Close: always nil
}
