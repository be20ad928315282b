'use strict';
// golden.js — ONNX Runtime as the numeric oracle of the Go encoder.
//
// Runs the committed fixture ONNX files (testdata/models, encoder/bundled)
// with onnxruntime-node on inputs cut from a real speech log-mel
// (testdata/mel/jfk_80.npy) plus one seeded random window, and writes the
// inputs and ORT's last_hidden_state as .npy files into testdata/golden/.
// Batch 1 and batch 3 (three different windows) for every fixture.
//
//   cd testdata/ort && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci && node golden.js
const path = require('path');
const ort = require('onnxruntime-node');
const npy = require('./npy');

const root = path.resolve(__dirname, '..', '..');
const out = path.join(root, 'testdata', 'golden');
const jfk = npy.read(path.join(root, 'testdata', 'mel', 'jfk_80.npy')); // [80, 3000]

// mulberry32: a small seeded PRNG, so the random window is reproducible.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// window returns frames [start, start+n) of the jfk log-mel as [80][n].
function window(start, n) {
  const w = new Float32Array(80 * n);
  for (let m = 0; m < 80; m++) for (let t = 0; t < n; t++) w[m * n + t] = jfk.data[m * 3000 + start + t];
  return w;
}

// randomWindow is log-mel-like noise in [-1.5, 1.5].
function randomWindow(n, seed) {
  const r = rng(seed);
  const w = new Float32Array(80 * n);
  for (let i = 0; i < w.length; i++) w[i] = 3 * r() - 1.5;
  return w;
}

function concat(ws) {
  const all = new Float32Array(ws.reduce((a, w) => a + w.length, 0));
  let o = 0;
  for (const w of ws) { all.set(w, o); o += w.length; }
  return all;
}

async function run(file, input, shape) {
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1 });
  const res = await s.run({ input_features: new ort.Tensor('float32', input, shape) });
  const y = res.last_hidden_state;
  return { dims: y.dims, data: y.data };
}

async function main() {
  const sets = [
    // name, frames, batch-1 window, batch-3 windows
    { name: 'tiny', frames: 48, b1: [window(100, 48)], b3: [window(200, 48), window(560, 48), randomWindow(48, 7)],
      models: ['tiny-op14', 'tiny-op17', 'tiny-op14-fp16', 'tiny-op14-external'].map(m => [m, path.join(root, 'testdata', 'models', m + '.onnx')]) },
    { name: 'demo', frames: 3000, b1: [window(0, 3000)], b3: null,
      models: [['demo', path.join(root, 'encoder', 'bundled', 'whisper-demo.onnx')]] },
  ];
  for (const set of sets) {
    for (const [tag, windows] of [['b1', set.b1], ['b3', set.b3]]) {
      if (!windows) continue;
      const shape = [windows.length, 80, set.frames];
      const input = concat(windows);
      if (set.name !== 'demo') npy.write(path.join(out, `${set.name}_in_${tag}.npy`), shape, input);
      for (const [model, file] of set.models) {
        const y = await run(file, input, shape);
        npy.write(path.join(out, `${model}_out_${tag}.npy`), y.dims, y.data);
        console.log(`${model} ${tag}: input [${shape}] → last_hidden_state [${y.dims}]`);
      }
    }
  }
  console.log(`onnxruntime-node ${require('onnxruntime-node/package.json').version}; goldens in ${path.relative(root, out)}`);
}

main().catch(e => { console.error(e); process.exit(1); });
