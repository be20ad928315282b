'use strict';
// decoder_bench.js — ONNX Runtime side of the decode-step benchmark
// (hack/bench-decoder, make bench-decoder).
//
//   node decoder_bench.js --onnx DIR --batch B --past L --threads N [--positions 1500]
//
// Loads DIR/decoder_with_past_model.onnx (CPU, graph optimisations on, N
// intra-op threads, 1 inter-op thread) and builds one decode step's inputs:
// B sequences, each one token at past length L, with seeded random past
// decoder keys/values and encoder (cross-attention) keys/values over
// --positions positions. Then answers commands on stdin, one per line:
//   run   → runs the step once, prints "ms <milliseconds>"
//   quit  → exits
const path = require('path');
const readline = require('readline');
const ort = require('onnxruntime-node');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) {
    if (def === undefined) { console.error(`decoder_bench.js: missing --${name}`); process.exit(2); }
    return def;
  }
  return process.argv[i + 1];
}

function rng(seed) { // mulberry32
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main() {
  const B = Number(arg('batch')), L = Number(arg('past')), threads = Number(arg('threads', '1'));
  const P = Number(arg('positions', '1500'));
  const session = await ort.InferenceSession.create(path.join(arg('onnx'), 'decoder_with_past_model.onnx'), {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const r = rng(B * 1000 + L);
  const feeds = {};
  for (const name of session.inputNames) {
    if (name === 'input_ids') {
      feeds[name] = new ort.Tensor('int64', BigInt64Array.from({ length: B }, (_, i) => BigInt(1000 + 97 * i)), [B, 1]);
      continue;
    }
    const meta = session.inputMetadata.find ? session.inputMetadata.find(m => m.name === name) : null;
    const dims = meta && meta.shape ? meta.shape : null;
    const heads = dims && typeof dims[1] === 'number' ? dims[1] : null;
    const hd = dims && typeof dims[3] === 'number' ? dims[3] : null;
    if (heads === null || hd === null) throw new Error(`cannot read the head shape of ${name}`);
    const n = name.includes('.encoder.') ? P : L;
    const data = new Float32Array(B * heads * n * hd);
    for (let i = 0; i < data.length; i++) data[i] = 2 * r() - 1;
    feeds[name] = new ort.Tensor('float32', data, [B, heads, n, hd]);
  }
  await session.run(feeds); // warm-up
  console.log(`ready onnxruntime-node ${require('onnxruntime-node/package.json').version} threads ${threads} batch ${B} past ${L}`);
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'run') {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      console.log(`ms ${Number(process.hrtime.bigint() - t0) / 1e6}`);
    } else if (cmd === 'quit' || cmd === '') {
      break;
    } else {
      console.log(`error unknown command ${cmd}`);
    }
  }
  process.exit(0);
}

main().catch(e => { console.error(e); process.exit(1); });
