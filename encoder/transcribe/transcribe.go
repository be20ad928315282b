package transcribe

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
)

// Whisper's time grid: a mel frame is 10 ms; the encoder halves the
// frames, so a timestamp step (0.02 s) is two frames.
const (
	framesPerSecond = mel.SampleRate / mel.Hop
	inputStride     = 2
	timePrecision   = float64(inputStride) / framesPerSecond
)

// Transcribe transcribes pcm (16 kHz mono) as Whisper's transcribe() does:
// 30 s windows from seek 0, each decoded with fallback, split into segments
// at timestamp pairs, the next window starting at the last timestamp.
// Segments go to emit as soon as their window is decided.
//
// Each window's log-mel is normalised on its own (as Hugging Face's feature
// extractor does), where Whisper normalises the whole file's at once; the
// two agree for audio up to 30 s.
func (t *Transcriber) Transcribe(ctx context.Context, pcm []float32, o Options, emit Emit) (Result, error) {
	return t.TranscribeSamples(ctx, audio.Float32(pcm), o, emit)
}

// TranscribeSamples is Transcribe of audio held as audio.Samples, e.g.
// audio.Mono16: 16-bit audio in half the memory of float32 samples.
func (t *Transcriber) TranscribeSamples(ctx context.Context, pcm audio.Samples, o Options, emit Emit) (Result, error) {
	o = t.defaulted(o)
	if err := t.check(o); err != nil {
		return Result{}, err
	}
	run := &run{t: t, o: o, pcm: pcm, emit: emit, rng: t.newRand()}
	run.res.Duration = float64(pcm.Len()) / SampleRate
	run.res.Segments = []Segment{}
	if err := run.transcribe(ctx); err != nil {
		return Result{}, err
	}
	return run.res, nil
}

func (t *Transcriber) newRand() *rand.Rand {
	seed := t.cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// run is the state of one transcription.
type run struct {
	t    *Transcriber
	o    Options
	pcm  audio.Samples
	emit Emit
	rng  *rand.Rand
	res  Result

	allTokens    []int   // the initial prompt, then every segment's tokens
	promptLen    int     // the initial prompt's share of allTokens
	promptResets int     // conditioning uses allTokens[promptResets:]
	lastSpeech   float64 // the end of the last word (word timestamps)
}

func (r *run) transcribe(ctx context.Context) error {
	t := r.t
	r.allTokens = t.tk.EncodePrompt(r.o.Prompt)
	r.promptLen = len(r.allTokens)
	if r.o.Language != "" {
		r.res.Language, _ = t.languageCode(r.o.Language)
	} else if !t.multi {
		r.res.Language = "en"
	}
	content := r.pcm.Len() / mel.Hop
	for seek := 0; seek < content; {
		next, err := r.window(ctx, seek, min(mel.Frames, content-seek))
		if err != nil {
			return err
		}
		seek = next
	}
	text, err := t.tk.Decode(r.allTokens[r.promptLen:])
	if err != nil {
		return fmt.Errorf("transcribe: %w", err)
	}
	r.res.Text = text
	return nil
}

// window decodes the window at seek (segSize frames of audio) and returns
// the next seek. Its decoder state holds decode memory from its K/V to its
// segments; the segments are emitted after that is returned.
func (r *run) window(ctx context.Context, seek, segSize int) (int, error) {
	t := r.t
	select { // a MaxAhead slot from the log-mel to the decode memory
	case t.ahead <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("transcribe: waiting for the encoder: %w", ctx.Err())
	}
	hidden, positions, err := r.encode(ctx, seek)
	if err != nil {
		<-t.ahead
		return 0, err
	}
	held, err := t.slots.acquire(ctx, t.WindowBytes(r.o, positions))
	<-t.ahead
	if err != nil {
		return 0, fmt.Errorf("transcribe: waiting for decode memory: %w", err)
	}
	segs, next, temperature, err := r.decide(ctx, hidden, positions, seek, segSize)
	t.slots.release(held)
	if err != nil {
		return 0, err
	}
	for _, s := range segs {
		if err := r.add(s); err != nil {
			return 0, err
		}
	}
	if len(segs) > 0 && (r.o.NoConditionOnPrevious || temperature > 0.5) {
		r.promptResets = len(r.allTokens)
	}
	return next, nil
}

// decide decodes the encoded window at seek into its segments (none when
// silent) and returns them with the next seek and the temperature of the
// decode that won.
func (r *run) decide(ctx context.Context, hidden []float32, positions, seek, segSize int) ([]Segment, int, float64, error) {
	t := r.t
	cross, err := t.cfg.Decoder.NewCross(ctx, hidden, positions)
	if err != nil {
		return nil, 0, 0, err
	}
	if r.res.Language == "" {
		if r.res.Language, err = t.detectLanguage(ctx, cross); err != nil {
			return nil, 0, 0, err
		}
	}
	job, err := r.job(cross)
	if err != nil {
		return nil, 0, 0, err
	}
	res, err := t.decodeWithFallback(ctx, job, r.o, r.rng)
	if err != nil {
		return nil, 0, 0, err
	}
	if r.silent(res) {
		return nil, seek + segSize, res.temperature, nil
	}
	raw, next, single := splitSegments(res.tokens, t.sp.TimestampBegin, seek, segSize)
	if r.o.WithoutTimestamps {
		raw, next = wholeWindow(res.tokens, seek, segSize), seek+segSize
	}
	segs := make([]Segment, len(raw))
	for i, s := range raw {
		if segs[i], err = r.segment(s, res); err != nil {
			return nil, 0, 0, err
		}
	}
	if r.o.WordTimestamps {
		if next, err = r.words(ctx, segs, cross, seek, segSize, next, single); err != nil {
			return nil, 0, 0, err
		}
	}
	return segs, next, res.temperature, nil
}

// job is the decode of the window cross with the run's prompt.
func (r *run) job(cross *decoder.Cross) (*windowJob, error) {
	t := r.t
	job := &windowJob{cross: cross, rules: t.rules(r.o), maxLen: r.o.MaxTokens, noSpeech: true}
	var err error
	if job.sot, err = t.sotSequence(r.res.Language, r.o.Task, !r.o.WithoutTimestamps); err != nil {
		return nil, err
	}
	job.prefix = t.tk.PromptPrefix(r.allTokens[r.promptResets:], t.dcfg.MaxTargetPositions)
	return job, nil
}

// silent is Whisper's no-speech skip: a likely <|nospeech|> unless the
// decode was confident anyway.
func (r *run) silent(res windowResult) bool {
	if math.IsNaN(r.o.NoSpeechThreshold) || res.noSpeech <= r.o.NoSpeechThreshold {
		return false
	}
	return math.IsNaN(r.o.LogProbThreshold) || res.avgLogProb <= r.o.LogProbThreshold
}

// encode computes the window at seek: log-mel of its 30 s of audio, then
// the encoder's last hidden state [positions][d_model].
func (r *run) encode(ctx context.Context, seek int) ([]float32, int, error) {
	from := min(seek*mel.Hop, r.pcm.Len())
	to := min(from+mel.WindowSamples, r.pcm.Len())
	lm, err := mel.LogMel(r.pcm.Slice(from, to), r.t.cfg.NMels)
	if err != nil {
		return nil, 0, fmt.Errorf("transcribe: log-mel at %.2f s: %w", float64(seek)/framesPerSecond, err)
	}
	hidden, positions, err := r.t.encodeWindow(ctx, lm)
	if err != nil {
		return nil, 0, fmt.Errorf("transcribe: encode window at %.2f s: %w", float64(seek)/framesPerSecond, err)
	}
	return hidden, positions, nil
}

// segment makes a Segment of a piece of the window's tokens.
func (r *run) segment(s rawSegment, res windowResult) (Segment, error) {
	seg := Segment{
		Seek:             s.seek,
		Start:            s.start,
		End:              s.end,
		Tokens:           s.tokens,
		Temperature:      res.temperature,
		AvgLogProb:       res.avgLogProb,
		CompressionRatio: res.compression,
		NoSpeechProb:     res.noSpeech,
	}
	var err error
	if seg.Text, err = r.t.tk.Decode(textTokens(s.tokens, r.t.sp.EOT)); err != nil {
		return seg, fmt.Errorf("transcribe: %w", err)
	}
	return seg, nil
}

// words adds word timestamps to a window's segments and returns the next
// seek: the last word's end unless the window ended on a lone timestamp.
func (r *run) words(ctx context.Context, segs []Segment, cross *decoder.Cross, seek, segSize, next int, single bool) (int, error) {
	if err := r.t.addWordTimestamps(ctx, segs, cross, r.res.Language, r.o.Task, segSize, r.lastSpeech); err != nil {
		return 0, err
	}
	end, ok := lastWordEnd(segs)
	if !ok {
		return next, nil
	}
	if !single && end > float64(seek)/framesPerSecond {
		if n := int(math.RoundToEven(end * framesPerSecond)); n > seek { // never stall
			next = n
		}
	}
	r.lastSpeech = end
	return next, nil
}

// lastWordEnd is Whisper's get_end: the end of the last word, else of the
// last segment.
func lastWordEnd(segs []Segment) (float64, bool) {
	for i := len(segs) - 1; i >= 0; i-- {
		if w := segs[i].Words; len(w) > 0 {
			return w[len(w)-1].End, true
		}
	}
	if len(segs) == 0 {
		return 0, false
	}
	return segs[len(segs)-1].End, true
}

// add records a decided segment (cleared when instantaneous or blank) and
// emits it.
func (r *run) add(seg Segment) error {
	seg.ID = len(r.res.Segments)
	if seg.Start == seg.End || strings.TrimSpace(seg.Text) == "" {
		seg.Text, seg.Tokens, seg.Words = "", []int{}, nil
	}
	r.res.Segments = append(r.res.Segments, seg)
	r.allTokens = append(r.allTokens, seg.Tokens...)
	if r.emit != nil {
		return r.emit(seg)
	}
	return nil
}

func textTokens(ids []int, eot int) []int {
	var out []int
	for _, id := range ids {
		if id < eot {
			out = append(out, id)
		}
	}
	return out
}

// rules builds the logit filters of o.
func (t *Transcriber) rules(o Options) rules {
	g := t.cfg.Generation
	return rules{
		beginSuppress: g.BeginSuppressTokens,
		suppress:      g.SuppressTokens,
		forceTokens:   o.ForceTokens,
		timestamps:    !o.WithoutTimestamps,
		eot:           t.sp.EOT,
		noTimestamps:  t.sp.NoTimestamps,
		tsBegin:       t.sp.TimestampBegin,
		maxInitial:    g.MaxInitialTimestampIndex,
	}
}

// wholeWindow is the one segment of a window decoded without timestamps:
// its whole span. A model may still sample timestamp tokens after
// <|notimestamps|> (Whisper and Hugging Face ban none there; random weights
// do it often); they are not segment boundaries, only ids of the text.
func wholeWindow(tokens []int, seek, segSize int) []rawSegment {
	return []rawSegment{{seek: seek, start: float64(seek) / framesPerSecond,
		end: float64(seek+segSize) / framesPerSecond, tokens: tokens}}
}

// rawSegment is a piece of a window's tokens with its times.
type rawSegment struct {
	seek       int
	start, end float64
	tokens     []int
}

// splitSegments is Whisper's segmentation of a window's sampled tokens
// (without <|endoftext|>): a segment between each pair of consecutive
// timestamps; the next window starts at the last timestamp, or after this
// one when the tokens end on a single timestamp or have no pair.
func splitSegments(tokens []int, tb, seek, segSize int) (segs []rawSegment, next int, single bool) {
	offset := float64(seek) / framesPerSecond
	isTS := func(i int) bool { return tokens[i] >= tb }
	n := len(tokens)
	single = n >= 2 && !isTS(n-2) && isTS(n-1)
	var cuts []int
	for i := 1; i < n; i++ {
		if isTS(i-1) && isTS(i) {
			cuts = append(cuts, i)
		}
	}
	if len(cuts) > 0 {
		if single {
			cuts = append(cuts, n)
		}
		last := 0
		for _, c := range cuts {
			piece := tokens[last:c]
			segs = append(segs, rawSegment{
				seek:   seek,
				start:  offset + float64(piece[0]-tb)*timePrecision,
				end:    offset + float64(piece[len(piece)-1]-tb)*timePrecision,
				tokens: piece,
			})
			last = c
		}
		if single {
			return segs, seek + segSize, true
		}
		if next := seek + (tokens[last-1]-tb)*inputStride; next > seek {
			return segs, next, false
		}
		return segs, seek + segSize, false // a last timestamp at 0 would never advance
	}
	duration := float64(segSize) / framesPerSecond
	for i := n - 1; i >= 0; i-- {
		if isTS(i) {
			if tokens[i] != tb {
				duration = float64(tokens[i]-tb) * timePrecision
			}
			break
		}
	}
	return []rawSegment{{seek: seek, start: offset, end: offset + duration, tokens: tokens}}, seek + segSize, single
}
