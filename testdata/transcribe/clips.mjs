// clips.mjs — the synthetic clips of reference.mjs and longref.mjs, sample
// for sample the Go tests' (encoder/transcribe: noise, longClip).

// noise is the Go test's noise(n, a, seed): a 32-bit LCG, float32 arithmetic.
export function noise(n, a, seed) {
  const x = new Float32Array(n);
  const a32 = Math.fround(a);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = Math.fround((s >>> 8) / 16777216);
    x[i] = Math.fround(a32 * (u * 2 - 1));
  }
  return x;
}

// longClip is the Go test's longClip(jfk, seconds): jfk, 5 s of silence,
// jfk, 10 s of noise (amplitude 0.3, seed 7 + the cycle's index), repeated
// and cut at seconds.
export function longClip(jfk, seconds) {
  const out = new Float32Array(seconds * 16000);
  let at = 0;
  for (let k = 0; at < out.length; k++) {
    const parts = [jfk, new Float32Array(5 * 16000), jfk, noise(10 * 16000, 0.3, 7 + k)];
    for (const p of parts) {
      const n = Math.min(p.length, out.length - at);
      out.set(p.subarray(0, n), at);
      at += n;
    }
  }
  return out;
}
