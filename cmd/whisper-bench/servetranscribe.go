package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// runBenchServeTranscribe sends concurrent transcriptions to a running
// `whisper-encoder serve` over HTTP (OpenAI's multipart
// /v1/audio/transcriptions) and reports the wall time and the server
// process's peak resident set (VmHWM of --pid), sampling its anonymous and
// file-backed parts while the requests run.
func runBenchServeTranscribe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve-transcribe", flag.ContinueOnError)
	target := fs.String("target", "", "the server's HTTP base URL, e.g. http://127.0.0.1:8080")
	pid := fs.Int("pid", 0, "the server's process id (its /proc/PID/status gives the peak RSS)")
	audioPath := fs.String("audio", "testdata/mel/jfk_16k.wav", "audio file (WAV, FLAC), repeated to --seconds and sent as 16 kHz PCM16 WAV")
	concurrency := fs.Int("concurrency", 16, "concurrent requests")
	seconds := fs.Float64("seconds", 60, "seconds of audio per request")
	language := fs.String("language", "en", "language form field (empty: the server detects it)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *target == "" || *pid < 1 || *concurrency < 1 || *seconds <= 0 || fs.NArg() > 0 {
		return usageError{errors.New("want --target URL, --pid ≥ 1, --concurrency ≥ 1, --seconds > 0 and no arguments (see -h)")}
	}
	pcm, err := benchAudio(*audioPath, *seconds)
	if err != nil {
		return err
	}
	wav := audio.EncodeWAV16(audio.Clip{Rate: transcribe.SampleRate, Channels: 1, Samples: pcm})
	model, err := servedModel(ctx, *target)
	if err != nil {
		return err
	}
	before, err := procRSS(*pid)
	if err != nil {
		return err
	}
	fmt.Printf("machine: %s, %d CPUs, load average %s\n", cpuModel(), runtime.NumCPU(), loadAvg())
	fmt.Printf("server: %s (pid %d), model %s; before: RSS %.1f MB (anon %.1f, file %.1f), peak %.1f MB\n",
		*target, *pid, model, before.rss, before.anon, before.file, before.peak)
	fmt.Printf("load: %d concurrent POST /v1/audio/transcriptions, %s repeated to %.0f s (%.1f MB WAV), language %q\n",
		*concurrency, *audioPath, *seconds, float64(len(wav))/1e6, *language)
	sampled := sampleRSS(*pid)
	t0 := time.Now()
	errs := make([]error, *concurrency)
	words := make([]int, *concurrency)
	var wg sync.WaitGroup
	for i := range *concurrency {
		wg.Go(func() { words[i], errs[i] = postTranscription(ctx, *target, model, *language, wav) })
	}
	wg.Wait()
	wall := time.Since(t0).Seconds()
	maxAnon, maxFile := sampled()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	after, err := procRSS(*pid)
	if err != nil {
		return err
	}
	total := 0
	for _, w := range words {
		total += w
	}
	audioS := *seconds * float64(*concurrency)
	fmt.Printf("done: %.1f s wall for %.0f s of audio (realtime factor %.1fx), %d words of text\n", wall, audioS, audioS/wall, total)
	fmt.Printf("server peak RSS: %.1f MB (VmHWM); sampled every 50 ms: anon ≤ %.1f MB, file ≤ %.1f MB; now RSS %.1f MB\n",
		after.peak, maxAnon, maxFile, after.rss)
	return nil
}

// servedModel asks the server which model it serves (GET /v1/models).
func servedModel(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(target, "/")+"/v1/models", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET /v1/models: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK || len(list.Data) == 0 {
		return "", fmt.Errorf("GET /v1/models: status %d, %d models, decode error %v: want 200 and a model", resp.StatusCode, len(list.Data), err)
	}
	return list.Data[0].ID, nil
}

// postTranscription sends one multipart transcription request and returns
// the number of words in its text.
func postTranscription(ctx context.Context, target, model, language string, wav []byte) (int, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fields := [][2]string{{"model", model}, {"response_format", "json"}}
	if language != "" {
		fields = append(fields, [2]string{"language", language})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return 0, err
		}
	}
	fw, err := mw.CreateFormFile("file", "audio.wav")
	if err != nil {
		return 0, err
	}
	if _, err := fw.Write(wav); err != nil {
		return 0, err
	}
	if err := mw.Close(); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(target, "/")+"/v1/audio/transcriptions", &body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST /v1/audio/transcriptions: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("POST /v1/audio/transcriptions: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /v1/audio/transcriptions: status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("POST /v1/audio/transcriptions: answer is not JSON with text: %w", err)
	}
	return len(strings.Fields(out.Text)), nil
}

// procRSS reads another process's resident set (MB) from /proc/PID/status.
func procRSS(pid int) (rssStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rssStat{}, fmt.Errorf("server peak RSS: %w", err)
	}
	r := rssStat{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return rssStat{}, fmt.Errorf("/proc/%d/status: %q: %w", pid, line, err)
		}
		switch f[0] {
		case "VmHWM:":
			r.peak = kb / 1024
		case "VmRSS:":
			r.rss = kb / 1024
		case "RssAnon:":
			r.anon = kb / 1024
		case "RssFile:":
			r.file = kb / 1024
		}
	}
	if math.IsNaN(r.peak) {
		return rssStat{}, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
	}
	return r, nil
}

// sampleRSS samples pid's anonymous and file-backed resident memory every
// 50 ms until the returned function is called, which gives their maxima.
func sampleRSS(pid int) func() (anon, file float64) {
	stop, done := make(chan struct{}), make(chan struct{})
	var maxAnon, maxFile float64
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if r, err := procRSS(pid); err == nil {
				maxAnon, maxFile = max(maxAnon, r.anon), max(maxFile, r.file)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (float64, float64) {
		close(stop)
		<-done
		return maxAnon, maxFile
	}
}
