// longref.mjs — the @huggingface/transformers ASR pipeline (onnxruntime-node)
// on long audio as the reference of encoder/transcribe's long-form loop
// without timestamps (TestReferenceLongForm): greedy ids of every chunk.
//
//   node longref.mjs --model DIR --out FILE.json [--seconds 305]
//
// The audio is clips.mjs's longClip (jfk, silence, jfk, noise, repeated and
// cut at --seconds). The pipeline cuts it into 30 s chunks without overlap
// (chunk_length_s 30, stride_length_s 0) and its feature extractor pads the
// last chunk's audio with zeros to 30 s before the log-mel, as the Go side
// pads its last window; each chunk is generated on its own (no previous-text
// prompt), greedy, language en, task transcribe (none for English-only
// models), max_new_tokens 224, no timestamps. For each chunk it records the
// ids model.generate returns (prompt included) and per step the top-1 minus
// top-2 logit after the logits processors (to report near-ties).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipeline, env } from '@huggingface/transformers';
import { readWav } from './wav.mjs';
import { longClip } from './clips.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (def !== undefined) return def;
    console.error(`longref.mjs: missing --${name} (usage: node longref.mjs --model DIR --out FILE.json [--seconds 305])`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const modelDir = path.resolve(arg('model'));
const out = arg('out');
const seconds = Number(arg('seconds', '305'));
env.allowRemoteModels = false;
env.localModelPath = path.dirname(modelDir) + path.sep;
const asr = await pipeline('automatic-speech-recognition', path.basename(modelDir), { dtype: 'fp32', device: 'cpu' });

const chunks = [];
let steps = [];
const generate = asr.model.generate.bind(asr.model);
asr.model.generate = async (opts) => {
  steps = [];
  const o = await generate(opts);
  const rows = (o.sequences ?? o).tolist();
  if (rows.length !== 1) throw new Error(`longref.mjs: expected one sequence a chunk, found ${rows.length}`);
  chunks.push({ ids: rows[0].map(Number), margins: steps.map((s) => Number(s.toFixed(4))) });
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
    steps.push(d[i1] - d[i2]);
    return r;
  };
  return list;
};

const multilingual = JSON.parse(fs.readFileSync(path.join(modelDir, 'generation_config.json'))).is_multilingual !== false;
const lang = multilingual ? { language: 'en', task: 'transcribe' } : {};
const pcm = longClip(readWav(path.join(repo, 'testdata', 'mel', 'jfk_16k.wav')), seconds);
const r = await asr(pcm, { ...lang, chunk_length_s: 30, stride_length_s: 0, return_timestamps: false, max_new_tokens: 224 });
const version = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', '@huggingface', 'transformers', 'package.json'))).version;
const result = {
  about: 'transformers.js ASR pipeline on longClip (jfk, 5 s silence, jfk, 10 s noise seed 7+k, repeated), chunk_length_s 30, stride_length_s 0, greedy, language en (multilingual models), no timestamps, max_new_tokens 224: per chunk the ids of model.generate (prompt included) and per sampled step the top-1 minus top-2 processed logit',
  versions: { transformers: version },
  seconds,
  chunks,
  text: r.text,
};
fs.writeFileSync(out, JSON.stringify(result) + '\n');
console.log(`${seconds} s: ${chunks.length} chunks, ${chunks.reduce((n, c) => n + c.ids.length, 0)} ids, min margin ${Math.min(...chunks.flatMap((c) => c.margins)).toFixed(4)}`);
