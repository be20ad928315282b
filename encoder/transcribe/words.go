package transcribe

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// Word-timestamp constants (openai/whisper's transcribe and timing).
const (
	medianFilterWidth    = 7
	tokensPerSecond      = framesPerSecond / inputStride // 50 encoder positions a second
	prependPunctuations  = "\"'“¿([{-"
	appendPunctuations   = "\"'.。,，!！?？:：”)]}、"
	sentenceEndMarks     = ".。!！?？"
	maxMedianWordSeconds = 0.7
)

// wordTiming is one word of find_alignment.
type wordTiming struct {
	word       string
	tokens     []int
	start, end float64
	prob       float64
}

// align is Whisper's find_alignment: the window's text tokens run once
// more after <|startoftranscript|>, language, task and <|notimestamps|>;
// the cross-attention of the alignment heads over the audio's positions,
// normalised per position and median-filtered, averaged over heads, gives
// a cost matrix whose dynamic-time-warping path times each token.
func (t *Transcriber) align(ctx context.Context, cross *decoder.Cross, lang string, task tokenizer.Task, text []int, frames int) ([]wordTiming, error) {
	if len(text) == 0 {
		return nil, nil
	}
	heads := t.cfg.Generation.AlignmentHeads
	if len(heads) == 0 {
		return nil, fmt.Errorf("transcribe: word timestamps: the model's generation config has no alignment_heads")
	}
	sot, err := t.sotSequence(lang, task, true)
	if err != nil {
		return nil, err
	}
	tokens := slices.Concat(sot, []int{t.sp.NoTimestamps}, text, []int{t.sp.EOT})
	seq, err := t.cfg.Decoder.NewSequence(cross)
	if err != nil {
		return nil, err
	}
	positions := cross.Positions()
	weights := make([][]float32, len(heads))
	for i := range weights {
		weights[i] = make([]float32, len(tokens)*positions)
	}
	c := t.join()
	defer c.leave()
	out, err := c.step(ctx, []decoder.Input{{Seq: seq, Tokens: tokens, AllLogits: true, AlignHeads: heads, Weights: weights}})
	if err != nil {
		return nil, err
	}
	probs := t.textTokenProbs(out[0], len(sot), text)
	cols := min(frames/2, positions)
	matrix := alignmentMatrix(weights, len(tokens), positions, cols)
	matrix = matrix[len(sot)*cols : (len(tokens)-1)*cols] // <|notimestamps|> … the last text token
	textIdx, timeIdx := dtw(matrix, len(text)+1, cols)
	return t.wordTimings(text, probs, textIdx, timeIdx, lang)
}

// textTokenProbs are the probabilities of each text token, softmax over the
// ordinary tokens of the row before it (rows from <|notimestamps|>).
func (t *Transcriber) textTokenProbs(logits []float32, first int, text []int) []float64 {
	v := t.dcfg.Vocab
	p := make([]float64, len(text))
	for i, id := range text {
		row := logits[(first+i)*v : (first+i)*v+t.sp.EOT]
		p[i] = math.Exp(logProb(row, id))
	}
	return p
}

// alignmentMatrix softmaxes each head's weights over the first cols
// positions, standardises them over the tokens per position, median-filters
// them over time and averages the heads: [rows][cols].
func alignmentMatrix(weights [][]float32, rows, positions, cols int) []float64 {
	m := make([]float64, rows*cols)
	w := make([]float64, rows*cols)
	for _, hw := range weights {
		for i := range rows {
			sum := 0.0
			for j := range cols {
				sum += float64(hw[i*positions+j])
			}
			for j := range cols {
				w[i*cols+j] = float64(hw[i*positions+j]) / sum
			}
		}
		standardise(w, rows, cols)
		medianFilter(w, rows, cols, medianFilterWidth)
		for k := range m {
			m[k] += w[k] / float64(len(weights))
		}
	}
	return m
}

// standardise makes each column zero-mean, unit (population) deviation.
func standardise(w []float64, rows, cols int) {
	for j := range cols {
		mean, sq := 0.0, 0.0
		for i := range rows {
			mean += w[i*cols+j]
		}
		mean /= float64(rows)
		for i := range rows {
			d := w[i*cols+j] - mean
			sq += d * d
		}
		std := math.Sqrt(sq / float64(rows))
		for i := range rows {
			w[i*cols+j] = (w[i*cols+j] - mean) / std
		}
	}
}

// medianFilter is Whisper's median_filter along each row: width-wide
// windows over the row padded by reflection; rows no longer than width/2
// stay as they are.
func medianFilter(w []float64, rows, cols, width int) {
	pad := width / 2
	if cols <= pad {
		return
	}
	padded := make([]float64, cols+2*pad)
	win := make([]float64, width)
	for i := range rows {
		row := w[i*cols : (i+1)*cols]
		for k := range padded {
			padded[k] = row[reflectIndex(k-pad, cols)]
		}
		for j := range cols {
			copy(win, padded[j:j+width])
			sort.Float64s(win)
			row[j] = win[pad]
		}
	}
}

// reflectIndex maps an index outside [0, n) into it as torch's "reflect" padding
// does (the edge is not repeated).
func reflectIndex(k, n int) int {
	for k < 0 || k >= n {
		if k < 0 {
			k = -k
		}
		if k >= n {
			k = 2*(n-1) - k
		}
	}
	return k
}

// dtw is Whisper's dynamic time warping over the cost -matrix [n][m]:
// returns the path as text and time indices, from (0, 0) to (n-1, m-1).
func dtw(matrix []float64, n, m int) (textIdx, timeIdx []int) {
	inf := float32(math.Inf(1))
	cost := make([]float32, (n+1)*(m+1))
	trace := make([]int8, (n+1)*(m+1))
	for k := range cost {
		cost[k] = inf
		trace[k] = -1
	}
	cost[0] = 0
	at := func(i, j int) int { return i*(m+1) + j }
	for j := 1; j <= m; j++ {
		for i := 1; i <= n; i++ {
			c0, c1, c2 := cost[at(i-1, j-1)], cost[at(i-1, j)], cost[at(i, j-1)]
			var c float32
			var tr int8
			switch {
			case c0 < c1 && c0 < c2:
				c, tr = c0, 0
			case c1 < c0 && c1 < c2:
				c, tr = c1, 1
			default:
				c, tr = c2, 2
			}
			cost[at(i, j)] = float32(-matrix[(i-1)*m+j-1]) + c
			trace[at(i, j)] = tr
		}
	}
	for j := 0; j <= m; j++ {
		trace[at(0, j)] = 2
	}
	for i := 0; i <= n; i++ {
		trace[at(i, 0)] = 1
	}
	i, j := n, m
	for i > 0 || j > 0 {
		textIdx = append(textIdx, i-1)
		timeIdx = append(timeIdx, j-1)
		switch trace[at(i, j)] {
		case 0:
			i, j = i-1, j-1
		case 1:
			i--
		default:
			j--
		}
	}
	slices.Reverse(textIdx)
	slices.Reverse(timeIdx)
	return textIdx, timeIdx
}

// wordTimings groups the tokens into words (Whisper's
// split_to_word_tokens) and times each word by the path: a token starts
// where the path first reaches its row.
func (t *Transcriber) wordTimings(text []int, probs []float64, textIdx, timeIdx []int, lang string) ([]wordTiming, error) {
	words, groups, err := t.tk.SplitWords(append(slices.Clone(text), t.sp.EOT), lang)
	if err != nil {
		return nil, fmt.Errorf("transcribe: word timestamps: %w", err)
	}
	if len(groups) <= 1 {
		return nil, nil
	}
	var jumps []float64
	for k := range textIdx {
		if k == 0 || textIdx[k] != textIdx[k-1] {
			jumps = append(jumps, float64(timeIdx[k])/tokensPerSecond)
		}
	}
	var out []wordTiming
	b := 0
	for w := 0; w < len(groups)-1; w++ {
		e := b + len(groups[w])
		if e >= len(jumps) {
			break
		}
		p := 0.0
		for _, v := range probs[b:e] {
			p += v
		}
		out = append(out, wordTiming{word: words[w], tokens: groups[w], start: jumps[b], end: jumps[e], prob: p / float64(e-b)})
		b = e
	}
	return out, nil
}

// mergePunctuations is Whisper's merge_punctuations: opening marks join the
// next word, closing marks the previous one.
func mergePunctuations(a []wordTiming) {
	for i, j := len(a)-2, len(a)-1; i >= 0; i-- {
		prev, next := &a[i], &a[j]
		if strings.HasPrefix(prev.word, " ") && strings.Contains(prependPunctuations, strings.TrimSpace(prev.word)) {
			next.word = prev.word + next.word
			next.tokens = slices.Concat(prev.tokens, next.tokens)
			prev.word, prev.tokens = "", nil
		} else {
			j = i
		}
	}
	for i, j := 0, 1; j < len(a); j++ {
		prev, next := &a[i], &a[j]
		if !strings.HasSuffix(prev.word, " ") && strings.Contains(appendPunctuations, next.word) {
			prev.word += next.word
			prev.tokens = slices.Concat(prev.tokens, next.tokens)
			next.word, next.tokens = "", nil
		} else {
			i = j
		}
	}
}

// addWordTimestamps is Whisper's add_word_timestamps over the segments of
// one window: align, bound long words by the median word duration, merge
// punctuation, then hand each segment its words and adjust its times.
func (t *Transcriber) addWordTimestamps(ctx context.Context, segs []Segment, cross *decoder.Cross, lang string, task tokenizer.Task, frames int, lastSpeech float64) error {
	if len(segs) == 0 {
		return nil
	}
	perSeg := make([][]int, len(segs))
	var text []int
	for i, s := range segs {
		perSeg[i] = textTokens(s.Tokens, t.sp.EOT)
		text = append(text, perSeg[i]...)
	}
	al, err := t.align(ctx, cross, lang, task, text, frames)
	if err != nil {
		return err
	}
	median, maxDur := boundLongWords(al)
	mergePunctuations(al)
	offset := float64(segs[0].Seek) / framesPerSecond
	k := 0
	for si := range segs {
		s := &segs[si]
		saved := 0
		words := []Word{}
		for k < len(al) && saved < len(perSeg[si]) {
			w := al[k]
			if w.word != "" {
				words = append(words, Word{Word: w.word, Start: round2(offset + w.start), End: round2(offset + w.end), Probability: w.prob})
			}
			saved += len(w.tokens)
			k++
		}
		if len(words) > 0 {
			lastSpeech = fitSegment(s, words, median, maxDur, lastSpeech)
		}
		s.Words = words
	}
	return nil
}

// boundLongWords caps words at sentence ends to twice the median word
// duration (itself at most 0.7 s); returns the median and the cap.
func boundLongWords(al []wordTiming) (median, maxDur float64) {
	var d []float64
	for _, w := range al {
		if w.end-w.start != 0 {
			d = append(d, w.end-w.start)
		}
	}
	if len(d) == 0 {
		return 0, 0
	}
	sort.Float64s(d)
	median = d[len(d)/2]
	if len(d)%2 == 0 {
		median = (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	median = min(maxMedianWordSeconds, median)
	maxDur = 2 * median
	for i := 1; i < len(al); i++ {
		if al[i].end-al[i].start > maxDur {
			if strings.Contains(sentenceEndMarks, al[i].word) {
				al[i].end = al[i].start + maxDur
			} else if strings.Contains(sentenceEndMarks, al[i-1].word) {
				al[i].start = al[i].end - maxDur
			}
		}
	}
	return median, maxDur
}

// fitSegment is the segment-boundary part of add_word_timestamps: a first
// word after a pause is shortened, and the segment's start and end move to
// its words' unless those are too long. Returns the segment's end.
func fitSegment(s *Segment, words []Word, median, maxDur, lastSpeech float64) float64 {
	w0 := &words[0]
	if w0.End-lastSpeech > median*4 && (w0.End-w0.Start > maxDur || len(words) > 1 && words[1].End-w0.Start > maxDur*2) {
		if len(words) > 1 && words[1].End-words[1].Start > maxDur {
			boundary := max(words[1].End/2, words[1].End-maxDur)
			w0.End, words[1].Start = boundary, boundary
		}
		w0.Start = max(0, w0.End-maxDur)
	}
	if s.Start < w0.End && s.Start-0.5 > w0.Start {
		w0.Start = max(0, min(w0.End-median, s.Start))
	} else {
		s.Start = w0.Start
	}
	last := &words[len(words)-1]
	if s.End > last.Start && s.End+0.5 < last.End {
		last.End = max(last.Start+median, s.End)
	} else {
		s.End = last.End
	}
	return s.End
}

func round2(x float64) float64 { return math.RoundToEven(x*100) / 100 }
