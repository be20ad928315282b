// Proves with ONNX Runtime (onnxruntime-node) that the quantized fixtures
// built by testdata/gen (int8/uint8 MatMulInteger/ConvInteger, 4-bit
// MatMulNBits) run and compute what their dequantized weights compute.
//
//   node testdata/ort/check_quantized.js record DIR  # after gen_fixtures.py: DIR holds the
//                                                     # dequantized fp32 twins; writes the
//                                                     # golden outputs to testdata/models/ort-check.json
//   node testdata/ort/check_quantized.js verify      # reruns the quantized files against them
//
// Each quantized model and its twin (the fp32 export with the dequantized
// weights) run on the same seeded input; the relative RMS difference of
// their outputs must stay under the tolerance (dynamic int8/uint8 also
// quantize activations, so they are looser than 4-bit with fp32 activations),
// and must be smaller than the difference from the original fp32 model.
"use strict";
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

const models = path.join(__dirname, "..", "models");
const checks = [
  // Signed int8 activations: ONNX Runtime's x86 kernel for them multiplies with
  // VPMADDUBSW on CPUs without VNNI, whose int16 pair sums saturate, so there the
  // oracle itself is off (rel RMS ~0.14 measured on an AVX2-only Zen 3); skipped there.
  { name: "tiny-int8", tolerance: 0.02, needsVNNI: true },
  { name: "tiny-uint8", tolerance: 0.02 },
  { name: "tiny-q4", tolerance: 1e-4 },
];

// hasVNNI: whether the CPU has AVX-VNNI or AVX512-VNNI (Linux /proc/cpuinfo).
function hasVNNI() {
  try {
    return /\b(avx_vnni|avx512_vnni)\b/.test(fs.readFileSync("/proc/cpuinfo", "utf8"));
  } catch (e) {
    return false;
  }
}

// input: a seeded [1, 80, 48] log-mel-like tensor (mulberry32 + Box-Muller)
function input() {
  let a = 20240601;
  const rnd = () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const x = new Float32Array(80 * 48);
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
  }
  return new ort.Tensor("float32", x, [1, 80, 48]);
}

async function run(file, x) {
  const s = await ort.InferenceSession.create(file);
  const out = await s.run({ input_features: x });
  return Array.from(out.last_hidden_state.data);
}

function relRMS(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / den);
}

async function main() {
  const [mode, dir] = process.argv.slice(2);
  const x = input();
  const golden = path.join(models, "ort-check.json");
  const fp32 = await run(path.join(models, "tiny-op14.onnx"), x);
  let record = { ort: require("onnxruntime-node/package.json").version, outputs: {} };
  if (mode === "verify") record = JSON.parse(fs.readFileSync(golden, "utf8"));
  else if (mode !== "record" || !dir) throw new Error("usage: check_quantized.js record DIR | verify");
  let failed = 0, skipped = 0;
  const vnni = hasVNNI();
  for (const c of checks) {
    if (c.needsVNNI && !vnni && mode === "verify") {
      skipped++;
      console.log(`skip ${c.name}: this CPU has no AVX-VNNI/AVX512-VNNI, where ONNX Runtime's signed-int8 kernel saturates (not a reference)`);
      continue;
    }
    const q = await run(path.join(models, c.name + ".onnx"), x);
    if (mode === "record") record.outputs[c.name] = await run(path.join(dir, c.name + "-dequant.onnx"), x);
    const twin = record.outputs[c.name];
    const eTwin = relRMS(q, twin), eFP32 = relRMS(q, fp32);
    const ok = eTwin < c.tolerance && eTwin < eFP32;
    if (!ok) failed++;
    console.log(`${ok ? "ok  " : "FAIL"} ${c.name}: rel RMS vs dequantized twin ${eTwin.toExponential(2)} (tolerance ${c.tolerance}), vs fp32 original ${eFP32.toExponential(2)}`);
  }
  if (mode === "record") fs.writeFileSync(golden, JSON.stringify(record) + "\n");
  console.log(`${checks.length - failed - skipped} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
