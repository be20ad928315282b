// reference.mjs — the @huggingface/transformers ASR pipeline (onnxruntime-node)
// as the reference of encoder/transcribe: greedy token ids of one window.
//
//   node reference.mjs --model DIR --out FILE.json
//
// DIR is a model written by testdata/gen/gen_whisper_hf.py (config.json,
// generation_config.json, preprocessor_config.json, tokenizer.json,
// onnx/encoder_model.onnx, onnx/decoder_model_merged.onnx). For each clip
// (jfk, 5 s of silence, 10 s of seeded noise — the same samples as the Go
// test's) and each mode (with and without timestamps) it runs the pipeline
// with language "en", task "transcribe" (none for English-only models),
// greedy, max_new_tokens 224 (so that
// the timestamp mode runs one generate call, Whisper's sample_len), records
// the ids model.generate returns, and for every step the top two logits
// after the logits processors (to report near-ties).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipeline, env } from '@huggingface/transformers';
import { readWav } from './wav.mjs';
import { noise } from './clips.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function arg(name) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`reference.mjs: missing --${name} (usage: node reference.mjs --model DIR --out FILE.json)`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const modelDir = path.resolve(arg('model'));
const out = arg('out');
env.allowRemoteModels = false;
env.localModelPath = path.dirname(modelDir) + path.sep;
const asr = await pipeline('automatic-speech-recognition', path.basename(modelDir), { dtype: 'fp32', device: 'cpu' });

// Record what generate returns, and the processed logits of every step.
let captured = null;
let steps = [];
const generate = asr.model.generate.bind(asr.model);
asr.model.generate = async (opts) => {
  const o = await generate(opts);
  const seq = o.sequences ?? o;
  captured = seq.tolist()[0].map(Number);
  return o;
};
const getProcessor = asr.model._get_logits_processor.bind(asr.model);
asr.model._get_logits_processor = (...a) => {
  const list = getProcessor(...a);
  const call = list._call.bind(list);
  list._call = (ids, logits) => {
    const r = call(ids, logits);
    const d = r[0].data;
    let i1 = 0;
    for (let i = 1; i < d.length; i++) if (d[i] > d[i1]) i1 = i;
    let i2 = i1 === 0 ? 1 : 0;
    for (let i = 0; i < d.length; i++) if (i !== i1 && d[i] > d[i2]) i2 = i;
    steps.push([i1, d[i1] - d[i2]]);
    return r;
  };
  return list;
};

// English-only models take no language or task (their prompt has neither).
const multilingual = JSON.parse(fs.readFileSync(path.join(modelDir, 'generation_config.json'))).is_multilingual !== false;

const clips = {
  jfk: readWav(path.join(repo, 'testdata', 'mel', 'jfk_16k.wav')),
  silence: new Float32Array(5 * 16000),
  noise: noise(10 * 16000, 0.3, 7),
};
const result = { about: 'transformers.js ASR pipeline, greedy, language en (multilingual models), max_new_tokens 224: ids of model.generate (prompt included); margins: per sampled step, top-1 minus top-2 processed logit', versions: { transformers: JSON.parse(fs.readFileSync(path.join(here, 'node_modules', '@huggingface', 'transformers', 'package.json'))).version }, runs: [] };
for (const [clip, pcm] of Object.entries(clips)) {
  for (const timestamps of [false, true]) {
    captured = null;
    steps = [];
    const lang = multilingual ? { language: 'en', task: 'transcribe' } : {};
    const r = await asr(pcm, { ...lang, return_timestamps: timestamps, max_new_tokens: 224 });
    result.runs.push({ clip, timestamps, ids: captured, margins: steps.map((s) => Number(s[1].toFixed(4))), text: r.text });
    console.log(`${clip} timestamps=${timestamps}: ${captured.length} ids, min margin ${Math.min(...steps.map((s) => s[1])).toFixed(4)}`);
  }
}
fs.writeFileSync(out, JSON.stringify(result) + '\n');
