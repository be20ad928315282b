'use strict';
// decoder_golden.js — ONNX Runtime as the numeric oracle of the Go decoder.
//
//   node decoder_golden.js --onnx DIR --check DIR [--out DIR]
//
// Runs the onnx-community decoder exports in --onnx (decoder_model.onnx,
// decoder_with_past_model.onnx) on the forced sequences of
// --check/decoder.json over --check/enc.npy, the way a generate loop does:
// decoder_model on the prompt (every prompt row's logits, and the present
// key/values), then decoder_with_past one token at a time, fed the previous
// step's decoder key/values and the first step's encoder key/values. Writes
// ort_<i>.npy [rows, vocab] per sequence into --out (default --check): the
// prompt's rows, then one row per forced token but the last. It also runs
// decoder_model on each whole sequence at once and prints the largest
// difference from the step-by-step logits (the two exports must agree), and
// when decoder_model_merged.onnx is there, runs it the same way (If on
// use_cache_branch) and checks it against the separate exports.
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const npy = require('./npy');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) {
    if (def === undefined) { console.error(`decoder_golden.js: missing --${name}`); process.exit(2); }
    return def;
  }
  return process.argv[i + 1];
}

const ids = a => new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), [1, a.length]);

// runMerged decodes sequence s with decoder_model_merged.onnx: the prompt
// with use_cache_branch false (the past inputs unused: zeros of length 1),
// then each token with use_cache_branch true and the previous presents.
async function runMerged(merged, withPast, s, hidden) {
  const feeds = { input_ids: ids(s.prompt), encoder_hidden_states: hidden, use_cache_branch: new ort.Tensor('bool', [false], [1]) };
  for (const meta of merged.inputMetadata) {
    if (!meta.name.startsWith('past_key_values.')) continue;
    const [, h, , hd] = meta.shape;
    feeds[meta.name] = new ort.Tensor('float32', new Float32Array(h * hd), [1, h, 1, hd]);
  }
  let res = await merged.run(feeds);
  const out = [res.logits.data];
  for (const t of s.tokens.slice(0, -1)) {
    for (const k of Object.keys(res)) if (k.startsWith('present.')) feeds['past_key_values.' + k.slice(8)] = res[k];
    feeds.input_ids = ids([t]);
    feeds.use_cache_branch = new ort.Tensor('bool', [true], [1]);
    res = await merged.run(feeds);
    out.push(res.logits.data);
  }
  const all = new Float32Array(out.reduce((a, o) => a + o.length, 0));
  let o = 0;
  for (const d of out) { all.set(d, o); o += d.length; }
  return all;
}

function rows(t) { // logits [1, n, vocab] → Float32Array
  return { n: t.dims[1], vocab: t.dims[2], data: t.data };
}

async function main() {
  const onnxDir = arg('onnx'), check = arg('check'), out = arg('out', check);
  const threads = Number(arg('threads', '1'));
  const opts = { graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1 };
  const first = await ort.InferenceSession.create(path.join(onnxDir, 'decoder_model.onnx'), opts);
  const next = await ort.InferenceSession.create(path.join(onnxDir, 'decoder_with_past_model.onnx'), opts);
  const mergedPath = path.join(onnxDir, 'decoder_model_merged.onnx');
  const merged = fs.existsSync(mergedPath) ? await ort.InferenceSession.create(mergedPath, opts) : null;
  const spec = require(path.resolve(check, 'decoder.json'));
  const enc = npy.read(path.join(check, 'enc.npy')); // [windows, positions, d]
  const [, P, D] = enc.shape;
  for (const [i, s] of spec.sequences.entries()) {
    const hidden = new ort.Tensor('float32', enc.data.subarray(s.enc * P * D, (s.enc + 1) * P * D), [1, P, D]);
    let res = await first.run({ input_ids: ids(s.prompt), encoder_hidden_states: hidden });
    const got = [rows(res.logits)];
    const past = {};
    for (const k of Object.keys(res)) if (k.startsWith('present.')) past['past_key_values.' + k.slice(8)] = res[k];
    for (const t of s.tokens.slice(0, -1)) {
      res = await next.run({ input_ids: ids([t]), ...past });
      got.push(rows(res.logits));
      for (const k of Object.keys(res)) if (k.startsWith('present.')) past['past_key_values.' + k.slice(8)] = res[k];
    }
    const vocab = got[0].vocab, n = got.reduce((a, g) => a + g.n, 0);
    const all = new Float32Array(n * vocab);
    let o = 0;
    for (const g of got) { all.set(g.data, o); o += g.data.length; }
    npy.write(path.join(out, `ort_${i}.npy`), [n, vocab], all);
    // the whole sequence through decoder_model at once must agree
    const whole = (await first.run({ input_ids: ids([...s.prompt, ...s.tokens.slice(0, -1)]), encoder_hidden_states: hidden })).logits.data;
    let maxd = 0, maxv = 0;
    for (let j = 0; j < all.length; j++) { maxd = Math.max(maxd, Math.abs(all[j] - whole[j])); maxv = Math.max(maxv, Math.abs(all[j])); }
    let line = `sequence ${i}: ${n} rows × ${vocab}; step-by-step vs whole-sequence max|Δ| ${maxd.toExponential(2)} (max|logit| ${maxv.toFixed(2)})`;
    if (maxd > 1e-3 * maxv) throw new Error(line);
    if (merged) {
      const m = await runMerged(merged, next, s, hidden);
      let md = 0;
      for (let j = 0; j < all.length; j++) md = Math.max(md, Math.abs(all[j] - m[j]));
      line += `; merged (If on use_cache_branch) vs separate max|Δ| ${md.toExponential(2)}`;
      if (md > 1e-3 * maxv) throw new Error(line);
    }
    console.log(line);
  }
  console.log(`onnxruntime-node ${require('onnxruntime-node/package.json').version}; goldens in ${out}`);
}

main().catch(e => { console.error(e); process.exit(1); });
