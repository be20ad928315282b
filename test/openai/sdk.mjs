// Drives the transcription API with the official `openai` npm SDK and prints
// what it got as one JSON object; node_sdk_test.go starts the server, runs
// this and checks every field against the Transcriber's in-process result.
//
//   node sdk.mjs BASE_URL WAV FLAC
import fs from 'node:fs';
import OpenAI, { toFile } from 'openai';

const [baseURL, wav, flac] = process.argv.slice(2);
if (!baseURL || !wav || !flac) {
  console.error('usage: node sdk.mjs BASE_URL WAV FLAC');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
const file = (path) => fs.createReadStream(path);

// errorOf returns the fields of the APIError a call throws.
async function errorOf(call) {
  try {
    await call();
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    return { status: e.status, type: e.type, param: e.param, code: e.code, message: e.error?.message };
  }
  throw new Error('the call did not fail');
}

const out = {};
out.models = [];
for await (const m of client.models.list()) out.models.push(m.id);

out.json = await client.audio.transcriptions.create({ file: file(wav), model: 'whisper-1' });
out.verbose = await client.audio.transcriptions.create({
  file: file(wav), model: 'whisper-1', response_format: 'verbose_json', timestamp_granularities: ['segment'],
});
out.words = await client.audio.transcriptions.create({
  file: file(wav), model: 'whisper-1', response_format: 'verbose_json', timestamp_granularities: ['word'],
});
out.text = await client.audio.transcriptions.create({ file: file(wav), model: 'whisper-1', response_format: 'text' });
out.srt = await client.audio.transcriptions.create({ file: file(wav), model: 'whisper-1', response_format: 'srt' });
out.vtt = await client.audio.transcriptions.create({ file: file(wav), model: 'whisper-1', response_format: 'vtt' });

out.stream = [];
const stream = await client.audio.transcriptions.create({ file: file(wav), model: 'whisper-1', stream: true });
for await (const ev of stream) out.stream.push(ev);

// A file built in memory, as browsers and apps upload recordings.
out.fromBuffer = await client.audio.transcriptions.create({
  file: await toFile(fs.readFileSync(flac), 'clip.flac', { type: 'audio/flac' }), model: 'whisper-1',
});

try {
  out.translation = { ok: await client.audio.translations.create({ file: file(flac), model: 'whisper-1' }) };
} catch (e) {
  if (!(e instanceof OpenAI.APIError)) throw e;
  out.translation = { error: { status: e.status, param: e.param, message: e.error?.message } };
}

out.errors = {
  model: await errorOf(() => client.audio.transcriptions.create({ file: file(flac), model: 'whisper-large-v9' })),
  format: await errorOf(() => client.audio.transcriptions.create({ file: file(flac), model: 'whisper-1', response_format: 'mp3' })),
  notAudio: await errorOf(async () => client.audio.transcriptions.create({
    file: await toFile(Buffer.from('plain text, not audio'), 'notes.txt'), model: 'whisper-1',
  })),
};
process.stdout.write(JSON.stringify(out));
