// longform.mjs — times the @huggingface/transformers ASR pipeline
// (onnxruntime-node, CPU) on long audio, for the comparison with
// `whisper-bench transcribe --concurrency 1 --timestamps=false`:
//
//   node longform.mjs --model DIR [--seconds 600] [--max-new-tokens 100]
//
// DIR is a model written by testdata/gen/gen_whisper_hf.py. The audio is
// testdata/mel/jfk_16k.wav repeated to --seconds, cut into 30 s chunks
// without overlap (chunk_length_s 30, stride_length_s 0: the windows the
// Go side decodes without timestamps), greedy, language en, at most
// --max-new-tokens a chunk. It prints the wall time and the tokens the
// chunks generated (random weights may end a chunk early: fewer tokens
// than the Go side's forced count favour this side).
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { pipeline, env } from '@huggingface/transformers';
import { readWav } from './wav.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (def === undefined) {
      console.error(`longform.mjs: missing --${name} (usage: node longform.mjs --model DIR [--seconds 600] [--max-new-tokens 100])`);
      process.exit(2);
    }
    return def;
  }
  return process.argv[i + 1];
}

const modelDir = path.resolve(arg('model'));
const seconds = Number(arg('seconds', '600'));
const maxNew = Number(arg('max-new-tokens', '100'));
const clip = readWav(path.join(repo, 'testdata/mel/jfk_16k.wav'));
const pcm = new Float32Array(Math.round(seconds * 16000));
for (let i = 0; i < pcm.length; i++) pcm[i] = clip[i % clip.length];

env.allowRemoteModels = false;
env.localModelPath = path.dirname(modelDir) + path.sep;
const asr = await pipeline('automatic-speech-recognition', path.basename(modelDir), { dtype: 'fp32', device: 'cpu' });
let chunks = 0;
let tokens = 0;
const generate = asr.model.generate.bind(asr.model);
asr.model.generate = async (opts) => {
  const o = await generate(opts);
  for (const row of o.tolist()) {
    chunks++;
    tokens += row.length;
  }
  return o;
};
const t0 = process.hrtime.bigint();
await asr(pcm, { language: 'en', task: 'transcribe', chunk_length_s: 30, stride_length_s: 0, max_new_tokens: maxNew, return_timestamps: false });
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
const version = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', '@huggingface', 'transformers', 'package.json'))).version;
console.log(`transformers.js ${version} (onnxruntime-node, fp32, ${os.cpus().length} CPUs, ${os.cpus()[0].model}): ${seconds} s of audio in ${wall.toFixed(1)} s wall (realtime factor ${(seconds / wall).toFixed(1)}x), ${chunks} chunks, ${tokens} ids generated (prompt included)`);
