'use strict';
// bench.js — ONNX Runtime side of `whisper-bench encoder --ort MODEL`.
//
//   node bench.js --model MODEL.onnx --in MEL.npy --threads N
//
// Loads an InferenceSession (CPU, graph optimisations on, N intra-op threads,
// 1 inter-op thread), then answers commands on stdin, one per line:
//   run          → runs one forward pass on the input, prints
//                  "ms <wall milliseconds> cpu <process CPU milliseconds>"
//   out PATH     → runs once and writes last_hidden_state to PATH (.npy), prints "ok"
// so the Go driver can alternate Go and ORT windows in one process pair.
const readline = require('readline');
const ort = require('onnxruntime-node');
const npy = require('./npy');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) {
    if (def === undefined) { console.error(`bench.js: missing --${name}`); process.exit(2); }
    return def;
  }
  return process.argv[i + 1];
}

async function main() {
  const threads = Number(arg('threads', '1'));
  const input = npy.read(arg('in'));
  const shape = input.shape.length === 2 ? [1, ...input.shape] : input.shape;
  const session = await ort.InferenceSession.create(arg('model'), {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const feeds = { input_features: new ort.Tensor('float32', input.data, shape) };
  console.log(`ready onnxruntime-node ${require('onnxruntime-node/package.json').version} threads ${threads}`);
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, path] = line.trim().split(/\s+/);
    if (cmd === 'run') {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      const wall = Number(process.hrtime.bigint() - t0) / 1e6;
      const c = process.cpuUsage(c0);
      console.log(`ms ${wall} cpu ${(c.user + c.system) / 1e3}`);
    } else if (cmd === 'out') {
      const y = (await session.run(feeds)).last_hidden_state;
      npy.write(path, y.dims, y.data);
      console.log('ok');
    } else if (cmd === 'quit' || cmd === '') {
      break;
    } else {
      console.log(`error unknown command ${cmd}`);
    }
  }
  process.exit(0);
}

main().catch(e => { console.error(e); process.exit(1); });
