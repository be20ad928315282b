// wav.mjs — the RIFF/WAVE reader shared by reference.mjs and longform.mjs.
import fs from 'node:fs';

// readWav reads a 16 kHz mono RIFF/WAVE file, float32 or 16-bit PCM.
export function readWav(file) {
  const b = fs.readFileSync(file);
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error(`${file}: expected a RIFF/WAVE file`);
  }
  let off = 12;
  let fmt = null;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === 'fmt ') {
      fmt = { format: b.readUInt16LE(off + 8), channels: b.readUInt16LE(off + 10), rate: b.readUInt32LE(off + 12), bits: b.readUInt16LE(off + 22) };
    } else if (id === 'data') {
      const float = fmt && fmt.format === 3 && fmt.bits === 32;
      const pcm16 = fmt && fmt.format === 1 && fmt.bits === 16;
      if (!fmt || !(float || pcm16) || fmt.channels !== 1 || fmt.rate !== 16000) {
        throw new Error(`${file}: expected 16 kHz mono float32 or PCM16, found ${JSON.stringify(fmt)}`);
      }
      const x = new Float32Array(size / (float ? 4 : 2));
      for (let i = 0; i < x.length; i++) x[i] = float ? b.readFloatLE(off + 8 + 4 * i) : b.readInt16LE(off + 8 + 2 * i) / 32768;
      return x;
    }
    off += 8 + size + (size & 1);
  }
  throw new Error(`${file}: no data chunk`);
}
