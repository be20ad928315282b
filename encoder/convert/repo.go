package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/download"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// Whole-model sources. A model repository in Hugging Face's layout (a local
// directory, a path on a volume, or hf://ORG/REPO[@REV]) holds config.json,
// model.safetensors (or model.safetensors.index.json and its shards) and
// optional generation, preprocessor and tokenizer files. Staging it writes
// the encoder exactly as the ONNX path does (model.safetensors, config.json),
// the decoder as BF16 decoder.safetensors, and copies the metadata and
// tokenizer files into hf/ (see package staged).

// Files of a Hugging Face model repository.
const (
	repoConfig  = "config.json"
	repoWeights = "model.safetensors"
	repoIndex   = "model.safetensors.index.json"
)

// repoMetaFiles are the optional files copied into the staged entry's hf/
// folder when the source has them; the JSON ones are validated.
var repoMetaFiles = []string{
	staged.GenerationConfigFile, "preprocessor_config.json",
	tokenizer.HFTokenizerJSON, tokenizer.HFVocabJSON, tokenizer.HFMergesTXT, tokenizer.HFAddedTokenJSON,
	"tokenizer_config.json", "special_tokens_map.json", "normalizer.json",
}

// repoSource reports whether src names a model repository: a local
// directory, or hf://ORG/REPO[@REV] without a file path.
func repoSource(src string) bool {
	if rest, ok := strings.CutPrefix(src, "hf://"); ok {
		if i := strings.LastIndexByte(rest, '@'); i >= 0 {
			rest = rest[:i]
		}
		return len(strings.Split(strings.Trim(rest, "/"), "/")) == 2
	}
	if isURL(src) {
		return false
	}
	st, err := os.Stat(src)
	return err == nil && st.IsDir()
}

// repoConfigJSON is the part of a Hugging Face WhisperConfig staging reads.
type repoConfigJSON struct {
	ModelType             string `json:"model_type"`
	DModel                int    `json:"d_model"`
	EncoderLayers         int    `json:"encoder_layers"`
	EncoderAttentionHeads int    `json:"encoder_attention_heads"`
	EncoderFFNDim         int    `json:"encoder_ffn_dim"`
	NumMelBins            int    `json:"num_mel_bins"`
	MaxSourcePositions    int    `json:"max_source_positions"`
	ActivationFunction    string `json:"activation_function"`
	DecoderLayers         int    `json:"decoder_layers"`
	DecoderAttentionHeads int    `json:"decoder_attention_heads"`
	DecoderFFNDim         int    `json:"decoder_ffn_dim"`
	VocabSize             int    `json:"vocab_size"`
	MaxTargetPositions    int    `json:"max_target_positions"`
	ScaleEmbedding        bool   `json:"scale_embedding"`
}

// parseRepoConfig reads config.json into the encoder config and the decoder shape.
func parseRepoConfig(b []byte) (staged.Config, staged.DecoderInfo, error) {
	var c repoConfigJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return staged.Config{}, staged.DecoderInfo{}, fmt.Errorf("%s: %w", repoConfig, err)
	}
	if c.ModelType != "" && c.ModelType != "whisper" {
		return staged.Config{}, staged.DecoderInfo{}, fmt.Errorf("%s: model_type %q, want \"whisper\"", repoConfig, c.ModelType)
	}
	if c.ActivationFunction != "" && c.ActivationFunction != "gelu" {
		return staged.Config{}, staged.DecoderInfo{}, fmt.Errorf("%s: activation_function %q, want \"gelu\"", repoConfig, c.ActivationFunction)
	}
	enc := staged.Config{
		ModelType: "whisper", DModel: c.DModel, EncoderLayers: c.EncoderLayers, EncoderAttentionHeads: c.EncoderAttentionHeads,
		EncoderFFNDim: c.EncoderFFNDim, NumMelBins: c.NumMelBins, MaxSourcePositions: c.MaxSourcePositions,
		ActivationFunction: "gelu", LayerNormEps: 1e-5, TorchDtype: "bfloat16",
	}
	if err := enc.Validate(); err != nil {
		return staged.Config{}, staged.DecoderInfo{}, fmt.Errorf("%s: %w", repoConfig, err)
	}
	dec := staged.DecoderInfo{Layers: c.DecoderLayers, Heads: c.DecoderAttentionHeads, FFN: c.DecoderFFNDim,
		Vocab: c.VocabSize, MaxTargetPositions: c.MaxTargetPositions}
	for _, f := range []struct {
		name string
		v    int
	}{{"decoder_layers", dec.Layers}, {"decoder_attention_heads", dec.Heads}, {"decoder_ffn_dim", dec.FFN},
		{"vocab_size", dec.Vocab}, {"max_target_positions", dec.MaxTargetPositions}} {
		if f.v <= 0 {
			return staged.Config{}, staged.DecoderInfo{}, fmt.Errorf("%s: %s is %d, want > 0", repoConfig, f.name, f.v)
		}
	}
	if c.DModel%dec.Heads != 0 {
		return staged.Config{}, staged.DecoderInfo{}, fmt.Errorf("%s: d_model %d is not a multiple of decoder_attention_heads %d", repoConfig, c.DModel, dec.Heads)
	}
	if c.ScaleEmbedding {
		return staged.Config{}, staged.DecoderInfo{}, fmt.Errorf("%s: scale_embedding is true, Whisper decoders have false", repoConfig)
	}
	return enc, dec, nil
}

// repo is a model repository with its files on local disk.
type repo struct {
	dir    string
	files  []string    // every source file present, relative to dir, sorted
	shards []string    // safetensors files
	onnx   *onnxLayout // the onnx/ files staged when there are no safetensors
}

// stageRepo stages the model repository opts.Source.
func stageRepo(ctx context.Context, opts Options) (Result, error) {
	if opts.SHA256 != "" {
		return Result{}, fmt.Errorf("stage %s: --sha256 checks a single file; a model repository has several (its content key covers them all)", opts.Source)
	}
	if opts.Heads > 0 {
		return Result{}, fmt.Errorf("stage %s: --heads overrides what an ONNX graph implies; a model repository's config.json names its heads", opts.Source)
	}
	r, cleanup, err := fetchRepo(ctx, &opts)
	if err != nil {
		return Result{}, fmt.Errorf("stage %s: %w", opts.Source, err)
	}
	defer cleanup()
	res, err := r.stage(ctx, &opts)
	if err != nil {
		return Result{}, fmt.Errorf("stage %s: %w", opts.Source, err)
	}
	return res, nil
}

// fetchRepo finds the repository's files: in place for a local directory,
// downloaded into a temporary folder of the cache for hf://.
func fetchRepo(ctx context.Context, opts *Options) (*repo, func(), error) {
	if !strings.HasPrefix(opts.Source, "hf://") {
		r, err := localRepo(opts.Source)
		return r, func() {}, err
	}
	dir, unlock, err := lockedTemp(opts.CacheDir, downloadPrefix)
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir); unlock() } // best effort: removeStale deletes what is left
	r, err := downloadRepo(ctx, opts, dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return r, cleanup, nil
}

// localRepo lists the files of a model repository directory.
func localRepo(dir string) (*repo, error) {
	r := &repo{dir: dir}
	have := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}
	if !have(repoConfig) {
		return nil, fmt.Errorf("directory %s: no %s: not a Hugging Face model repository", dir, repoConfig)
	}
	r.files = append(r.files, repoConfig)
	switch {
	case have(repoIndex):
		shards, err := indexShards(dir)
		if err != nil {
			return nil, err
		}
		for _, s := range shards {
			if !have(s) {
				return nil, fmt.Errorf("%s names shard %s, which %s does not have", repoIndex, s, dir)
			}
		}
		r.shards = shards
		r.files = append(r.files, repoIndex)
	case have(repoWeights):
		r.shards = []string{repoWeights}
	default:
		if st, err := os.Stat(filepath.Join(dir, onnxDir)); err == nil && st.IsDir() {
			if err := r.addONNX(have); err != nil {
				return nil, err
			}
			break
		}
		err := noWeights(dir)
		if have("pytorch_model.bin") {
			err = fmt.Errorf("%w (pytorch_model.bin is not read: a pickle can run code; use the repository's safetensors revision or convert it)", err)
		}
		return nil, err
	}
	r.files = append(r.files, r.shards...)
	for _, f := range repoMetaFiles {
		if have(f) {
			r.files = append(r.files, f)
		}
	}
	sort.Strings(r.files)
	return r, nil
}

func noWeights(where string) error {
	return fmt.Errorf("%s has neither %s nor %s (nor an %s/ folder of the onnx-community layout)", where, repoWeights, repoIndex, onnxDir)
}

// addONNX picks the onnx/ files to stage and lists them, with their
// external-data files, among the repository's files.
func (r *repo) addONNX(have func(string) bool) error {
	l, err := findONNXLayout(have)
	if err != nil {
		return fmt.Errorf("%s has neither %s nor %s, and its %s/ folder (onnx-community layout) is incomplete: %w", r.dir, repoWeights, repoIndex, onnxDir, err)
	}
	r.onnx = l
	for _, f := range []string{l.encoder, l.decoder} {
		ext, err := externalData(filepath.Join(r.dir, f))
		if err != nil {
			return err
		}
		for _, e := range ext {
			if !have(e) {
				return fmt.Errorf("%s names external data %s, which %s does not have", f, e, r.dir)
			}
		}
		r.files = append(r.files, f)
		r.files = append(r.files, ext...)
	}
	return nil
}

// indexShards reads model.safetensors.index.json and lists its shards.
func indexShards(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, repoIndex))
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", repoIndex, err)
	}
	set := map[string]bool{}
	for tensor, f := range idx.WeightMap {
		if f == "" || filepath.Base(f) != f || !filepath.IsLocal(f) {
			return nil, fmt.Errorf("%s: tensor %s: shard %q is not a file name next to the index", repoIndex, tensor, f)
		}
		set[f] = true
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%s maps no tensors", repoIndex)
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out, nil
}

// downloadRepo downloads the known files of hf://ORG/REPO[@REV] into dir;
// optional files the repository lacks (HTTP 404) are skipped.
func downloadRepo(ctx context.Context, opts *Options, dir string) (*repo, error) {
	get := func(name string, optional bool) (bool, error) {
		dl := opts.Download
		dl.SHA256 = ""
		dl.Logger = opts.Logger
		dl.Progress = func(done, total int64) { opts.Progress(Progress{"download", done, total}) }
		_, err := download.File(ctx, repoFileURL(opts.Source, name), filepath.Join(dir, name), dl)
		if optional && errors.Is(err, download.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	if _, err := get(repoConfig, false); err != nil {
		return nil, err
	}
	ok, err := get(repoIndex, true)
	if err != nil {
		return nil, err
	}
	if ok {
		shards, err := indexShards(dir)
		if err != nil {
			return nil, err
		}
		for _, s := range shards {
			if _, err := get(s, false); err != nil {
				return nil, fmt.Errorf("shard %s named by %s: %w", s, repoIndex, err)
			}
		}
	} else if ok, err = get(repoWeights, true); err != nil {
		return nil, err
	} else if !ok {
		if err := downloadONNX(ctx, opts, dir, get); err != nil {
			return nil, err
		}
	}
	for _, f := range repoMetaFiles {
		if _, err := get(f, true); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return localRepo(dir)
}

// repoFileURL is hf://ORG/REPO/NAME[@REV] for the repository hf://ORG/REPO[@REV].
func repoFileURL(src, name string) string {
	base, rev := src, ""
	if i := strings.LastIndexByte(src, '@'); i >= 0 {
		base, rev = src[:i], src[i:]
	}
	return strings.TrimRight(base, "/") + "/" + name + rev
}

// stage converts the repository into a temporary directory of the cache
// while hashing its files for the content key, and renames the directory to
// <cache>/<key>; a key already in the cache stops the conversion and is the
// result.
func (r *repo) stage(ctx context.Context, opts *Options) (Result, error) {
	cfgJSON, err := os.ReadFile(filepath.Join(r.dir, repoConfig))
	if err != nil {
		return Result{}, err
	}
	enc, dec, err := parseRepoConfig(cfgJSON)
	if err != nil {
		return Result{}, err
	}
	var write func(ctx context.Context, tmp string) (staged.Manifest, error)
	if r.onnx != nil {
		s, err := r.onnx.open(r.dir, enc, dec)
		if err != nil {
			return Result{}, err
		}
		defer s.close()
		write = func(ctx context.Context, tmp string) (staged.Manifest, error) {
			return r.writeONNX(ctx, opts, s, tmp, enc, &dec)
		}
	} else {
		w, err := openRepoWeights(r.dir, r.shards)
		if err != nil {
			return Result{}, err
		}
		defer w.close()
		write = func(ctx context.Context, tmp string) (staged.Manifest, error) {
			return r.write(ctx, opts, w, tmp, enc, &dec)
		}
	}
	tmp, unlock, err := lockedTemp(opts.CacheDir, tmpPrefix)
	if err != nil {
		return Result{}, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp) // best effort: removeStale deletes what is left
		}
		unlock()
	}()
	man, files, existing, err := r.convertWhileHashing(ctx, opts, tmp, write)
	final := filepath.Join(opts.CacheDir, repoKey(files))
	switch {
	case existing:
		return existingResult(final, nil)
	case err != nil:
		return Result{}, err
	}
	man.Key, man.SourceFiles, man.SourceSHA256 = repoKey(files), files, repoSHA(files)
	for _, f := range files {
		man.SourceSize += f.Size
	}
	return r.commit(opts, tmp, final, enc, &man, &committed)
}

// convertWhileHashing writes the entry into tmp while a goroutine hashes
// the source files; existing is true when their key is already staged.
func (r *repo) convertWhileHashing(ctx context.Context, opts *Options, tmp string,
	write func(context.Context, string) (staged.Manifest, error)) (man staged.Manifest, files []staged.SourceFile, existing bool, err error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var hashErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		files, hashErr = r.hash(cctx, opts)
		if hashErr == nil && isStaged(filepath.Join(opts.CacheDir, repoKey(files))) {
			cancel(errAlreadyStaged)
		}
	}()
	man, err = write(cctx, tmp)
	if err != nil {
		cancel(err) // stop hashing (unless it already found the entry)
	}
	<-done
	if errors.Is(context.Cause(cctx), errAlreadyStaged) {
		return man, files, true, nil
	}
	if err == nil {
		err = hashErr
	}
	return man, files, false, err
}

// repoKey is the content key of a repository's files (name and sha256 of each).
func repoKey(files []staged.SourceFile) string {
	sums := []string{"model repository"}
	for _, f := range files {
		sums = append(sums, f.Name+" "+f.SHA256)
	}
	return staged.Key(staged.BFloat16, sums...)
}

// hash hashes every source file, reporting progress.
func (r *repo) hash(ctx context.Context, opts *Options) ([]staged.SourceFile, error) {
	var total, base int64
	for _, f := range r.files {
		if st, err := os.Stat(filepath.Join(r.dir, f)); err == nil {
			total += st.Size()
		}
	}
	out := make([]staged.SourceFile, 0, len(r.files))
	for _, f := range r.files {
		sum, n, err := hashFile(ctx, filepath.Join(r.dir, f), func(done int64) { opts.Progress(Progress{"hash", base + done, total}) })
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", f, err)
		}
		base += n
		out = append(out, staged.SourceFile{Name: f, SHA256: sum, Size: n})
	}
	return out, nil
}

// write converts the weights and copies the metadata into tmp, returning
// the manifest (without key, sources and sizes).
func (r *repo) write(ctx context.Context, opts *Options, w *repoWeightFiles, tmp string, enc staged.Config, dec *staged.DecoderInfo) (staged.Manifest, error) {
	encPrefix, decPrefix, err := w.prefixes()
	if err != nil {
		return staged.Manifest{}, err
	}
	if err := w.checkTied(decPrefix); err != nil {
		return staged.Manifest{}, err
	}
	encSpecs, decSpecs := enc.Tensors(), dec.Specs(enc.DModel)
	if err := w.check(encPrefix, encSpecs, enc); err != nil {
		return staged.Manifest{}, err
	}
	if err := w.check(decPrefix, decSpecs, enc); err != nil {
		return staged.Manifest{}, err
	}
	tok, err := r.copyMeta(tmp, dec.Vocab, !opts.NoSync)
	if err != nil {
		return staged.Manifest{}, err
	}
	prec := w.precision(encPrefix, encSpecs, decPrefix, decSpecs)
	total := w.bytes(encPrefix, encSpecs) + w.bytes(decPrefix, decSpecs)
	prog := &convertProgress{report: opts.Progress, total: total}
	encRecs, err := w.writeFile(ctx, filepath.Join(tmp, staged.WeightsFile), encPrefix, encSpecs, !opts.NoSync, prog)
	if err != nil {
		return staged.Manifest{}, err
	}
	if dec.Tensors, err = w.writeFile(ctx, filepath.Join(tmp, staged.DecoderFile), decPrefix, decSpecs, !opts.NoSync, prog); err != nil {
		return staged.Manifest{}, err
	}
	return staged.Manifest{
		FormatVersion: staged.FormatVersion, Source: opts.Source,
		SourcePrecision: prec, LossySource: prec.Lossy(), Precision: staged.BFloat16,
		ConverterVersion: opts.ConverterVersion, Producer: "huggingface safetensors",
		StagedAt: time.Now().UTC().Truncate(time.Second), Tensors: encRecs, Sizes: staged.SizesOf(enc),
		Capabilities: staged.CapabilitiesOf(tok.tok), Decoder: dec, Tokenizer: &tok.info,
	}, nil
}

// stagedTokenizer is the tokenizer of a staged entry and its record.
type stagedTokenizer struct {
	tok  *tokenizer.Tokenizer
	info staged.TokenizerInfo
}

// copyMeta copies config.json and the optional metadata and tokenizer files
// into tmp/hf (JSON files validated), and loads the tokenizer: the copied
// files, or Whisper's built-in vocabulary for vocab tokens.
func (r *repo) copyMeta(tmp string, vocab int, sync bool) (stagedTokenizer, error) {
	hf := filepath.Join(tmp, staged.HFDir)
	if err := os.Mkdir(hf, 0o755); err != nil {
		return stagedTokenizer{}, err
	}
	var tokFiles []string
	for _, f := range append([]string{repoConfig}, repoMetaFiles...) {
		b, err := os.ReadFile(filepath.Join(r.dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return stagedTokenizer{}, err
		}
		if strings.HasSuffix(f, ".json") {
			if err := staged.ValidJSON(b); err != nil {
				return stagedTokenizer{}, fmt.Errorf("%s: %w", f, err)
			}
		}
		if err := writeFile(filepath.Join(hf, f), b, sync); err != nil {
			return stagedTokenizer{}, err
		}
		if isTokenizerFile(f) {
			tokFiles = append(tokFiles, f)
		}
	}
	return repoTokenizer(os.DirFS(hf), vocab, tokFiles)
}

// repoTokenizer loads the tokenizer of a repository's files fsys (HF files,
// else Whisper's built-in vocabulary for vocab tokens) and checks its size.
func repoTokenizer(fsys fs.FS, vocab int, files []string) (stagedTokenizer, error) {
	if !tokenizer.HasHFTokenizer(fsys) {
		tok, err := tokenizer.ForVocabSize(vocab)
		if err != nil {
			return stagedTokenizer{}, fmt.Errorf("no tokenizer files (%s, or %s + %s + %s) and no built-in one: %w",
				tokenizer.HFTokenizerJSON, tokenizer.HFVocabJSON, tokenizer.HFMergesTXT, tokenizer.HFAddedTokenJSON, err)
		}
		return stagedTokenizer{tok, staged.TokenizerInfo{Kind: staged.TokenizerBuiltin, Name: tok.Name(),
			VocabSize: tok.VocabSize(), NumLanguages: tok.NumLanguages()}}, nil
	}
	tok, err := tokenizer.LoadHF(fsys)
	if err != nil {
		return stagedTokenizer{}, fmt.Errorf("tokenizer: %w", err)
	}
	if tok.VocabSize() != vocab {
		return stagedTokenizer{}, fmt.Errorf("tokenizer %s has %d tokens, %s says vocab_size %d", tok.Name(), tok.VocabSize(), repoConfig, vocab)
	}
	return stagedTokenizer{tok, staged.TokenizerInfo{Kind: staged.TokenizerHF, Name: tok.Name(), Files: files,
		VocabSize: tok.VocabSize(), NumLanguages: tok.NumLanguages()}}, nil
}

func isTokenizerFile(f string) bool {
	switch f {
	case tokenizer.HFTokenizerJSON, tokenizer.HFVocabJSON, tokenizer.HFMergesTXT, tokenizer.HFAddedTokenJSON,
		"tokenizer_config.json", "special_tokens_map.json", "normalizer.json":
		return true
	}
	return false
}

// commit writes config.json and manifest.json and renames tmp to final.
func (r *repo) commit(opts *Options, tmp, final string, enc staged.Config, man *staged.Manifest, committed *bool) (Result, error) {
	extra, err := dirBytes(tmp, staged.WeightsFile)
	if err != nil {
		return Result{}, err
	}
	size, err := writeMeta(tmp, enc, man, !opts.NoSync, extra)
	if err != nil {
		return Result{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		if isStaged(final) { // another stager won the race
			return existingResult(final, nil)
		}
		return Result{}, fmt.Errorf("rename %s to %s: %w", tmp, final, err)
	}
	*committed = true
	if !opts.NoSync {
		if err := syncDir(opts.CacheDir); err != nil {
			return Result{}, err
		}
	}
	if man.LossySource {
		opts.Logger.Warn("lossy source: BF16 weights staged from a "+string(man.SourcePrecision)+" model differ from those of the fp32 original",
			"source", opts.Source, "precision", man.SourcePrecision)
	}
	return Result{
		Key: man.Key, Dir: final, SourceSHA256: man.SourceSHA256, SourcePrecision: man.SourcePrecision, Lossy: man.LossySource,
		SizeBytes: size, StagedAt: man.StagedAt, Config: enc, Capabilities: man.Capabilities, Decoder: true,
	}, nil
}

// repoSHA is the sha256 reported for a repository (SourceSHA256 of the
// manifest and the result): that of its shard index, or of its weights file,
// or of its decoder .onnx.
func repoSHA(files []staged.SourceFile) string {
	want := []string{repoIndex, repoWeights}
	for _, f := range files {
		if strings.HasPrefix(f.Name, onnxDir+"/decoder") && strings.HasSuffix(f.Name, ".onnx") {
			want = append(want, f.Name)
		}
	}
	for _, want := range want {
		for _, f := range files {
			if f.Name == want {
				return f.SHA256
			}
		}
	}
	return ""
}

// dirBytes is the size of the files under dir, except skip (at the top).
func dirBytes(dir, skip string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == filepath.Join(dir, skip) {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	return n, err
}
