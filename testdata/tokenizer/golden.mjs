// Reference ids for encoder/tokenizer, from two independent tokenizers run on
// Whisper's own rank files:
//   - js-tiktoken (OpenAI's tiktoken algorithm in JS), given the .tiktoken
//     ranks and Whisper's special tokens, and
//   - @huggingface/tokenizers (the tokenizer engine of @huggingface/transformers),
//     given a tokenizer.json built here from the same ranks (GPT-2 byte-to-unicode
//     vocabulary + merges derived from the ranks + Whisper's added tokens).
// The two must agree on every case; the script fails if they do not.
//
//   node golden.mjs record   writes golden.json and the Hugging Face fixtures (hf/*/*.gz)
//   node golden.mjs print    prints the golden JSON to stdout (the Go live test reads it)
//
// Run from anywhere; reads ../../../shared/data/whisper/*.tiktoken (the
// project's reference data) or $WHISPER_DATA.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { Tiktoken } from "js-tiktoken/lite";
import { Tokenizer } from "@huggingface/tokenizers";

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = process.env.WHISPER_DATA || path.resolve(here, "../../../shared/data/whisper");
const mode = process.argv[2];
if (mode !== "record" && mode !== "print") {
  console.error("usage: node golden.mjs record|print");
  process.exit(2);
}

const PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Whisper's language codes in token order (openai/whisper tokenizer.py).
const LANGUAGES = (
  "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no " +
  "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw " +
  "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl " +
  "mg as tt haw ln ha ba jw su yue"
).split(" ");

function specialTokens(nRanks, numLanguages) {
  const names = ["<|endoftext|>", "<|startoftranscript|>"];
  for (const l of LANGUAGES.slice(0, numLanguages)) names.push(`<|${l}|>`);
  names.push("<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>");
  for (let i = 0; i < 1501; i++) names.push(`<|${(i * 0.02).toFixed(2)}|>`);
  return names.map((content, k) => ({ content, id: nRanks + k }));
}

function readRanks(name) {
  const lines = fs.readFileSync(path.join(dataDir, `${name}.tiktoken`), "utf8").split("\n").filter(Boolean);
  return lines.map((line, i) => {
    const [b64, rank] = line.split(" ");
    if (Number(rank) !== i) throw new Error(`${name}.tiktoken line ${i + 1}: rank ${rank}`);
    return b64 === "=" ? Buffer.alloc(0) : Buffer.from(b64, "base64");
  });
}

// GPT-2's reversible byte → printable character map.
function bytesToUnicode() {
  const keep = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  return map;
}
const B2U = bytesToUnicode();
const toHF = (buf) => Array.from(buf, (b) => B2U[b]).join("");

// The merge that makes token `rank`: byte-pair merge its bytes using only
// lower ranks; the two parts left are the merge's left and right.
function deriveMerges(tokens, rankOf) {
  const merges = [];
  for (let r = 0; r < tokens.length; r++) {
    const t = tokens[r];
    if (t.length < 2) continue;
    let parts = Array.from(t, (_, i) => [i, i + 1]);
    for (;;) {
      let best = -1, bestRank = r;
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = rankOf.get(t.subarray(parts[i][0], parts[i + 1][1]).toString("latin1"));
        if (k !== undefined && k < bestRank) { best = i; bestRank = k; }
      }
      if (best < 0) break;
      parts.splice(best, 2, [parts[best][0], parts[best + 1][1]]);
    }
    if (parts.length !== 2) throw new Error(`token ${r} is not one merge of lower ranks (${parts.length} parts)`);
    merges.push([toHF(t.subarray(0, parts[0][1])), toHF(t.subarray(parts[1][0]))]);
  }
  return merges;
}

function buildHF(tokens, specials) {
  const rankOf = new Map(tokens.map((t, i) => [t.toString("latin1"), i]));
  const vocab = {};
  tokens.forEach((t, i) => { vocab[toHF(t)] = i; });
  vocab["<|endoftext|>"] = specials[0].id; // as Hugging Face's Whisper vocab.json has it
  const merges = deriveMerges(tokens, rankOf);
  const added = specials.map((s) => ({
    id: s.id, content: s.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const tokenizerJSON = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "",
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
  const addedTokensJSON = Object.fromEntries(specials.map((s) => [s.content, s.id]));
  return { tokenizerJSON, vocab, merges, addedTokensJSON };
}

// --- the corpus ---
const FIXED = [
  "Hello world",
  " And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
  "I'm sure they'll say it's what we've done; he'd KNOW. Isn't it? 'tis 'TIS y'all ''s",
  "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1,000,000 2^10=1024 ½ ² ³ ٣ ४ 〇",
  "Punctuation!!! ... ??? -- --- ((nested)) [brackets] {braces} <<<angles>>> \"quotes\" 'single' `tick`",
  "Whitespace:  two   three    four\ttab\t\ttabs\nnewline\n\nblank\r\nCRLF \n mixed \t\n  trailing   ",
  "   leading spaces",
  "\n\n\n",
  " ",
  "",
  "a",
  "中文：我们今天去公园散步，天气非常好。你好，世界！",
  "日本語のテキスト：東京は日本の首都です。カタカナ、ひらがな、漢字。ｶﾀｶﾅ",
  "العربية: مرحبا بالعالم، كيف حالك اليوم؟ ١٢٣",
  "हिन्दी: नमस्ते दुनिया, आप कैसे हैं? क्षत्रिय ज्ञान",
  "Русский: Привет, мир! Как дела? Ёжик в тумане.",
  "한국어: 안녕하세요 세계! 오늘 날씨가 좋네요.",
  "Ελληνικά, עברית, ไทย ภาษาไทย, ქართული, Հայերեն, ᐊᓂᔑᓈᐯᒧᐎᓐ, 𓀀𓀁𓀂",
  "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇩🇪🇯🇵 ❤️ ✋🏿 🧑‍💻 🫠",
  "Music ♪♪ ♩♫♬ ♭♮♯ [MUSIC] (applause) «guillemets» „Anführung“ 「括弧」『二重』",
  "naïve café résumé façade Ångström Øre Straße ǅ ﬁ ligature",
  "Mathematical 𝔄𝔅ℭ 𝟘𝟙𝟚 ∀x∈ℝ: x²≥0 ≠ ≤ ≥ ∞ ∑ √",
  "Zero\u200bwidth\u200cjoiners\u200d and \u00a0nbsp\u00a0 and \u3000ideographic\u3000space and \u2028line\u2029para",
  "Code: func main() { fmt.Println(\"hi\") } // comment\n\tif x != nil { return err }",
  "URLs https://example.com/path?q=1&r=2#frag and emails a.b@example.org",
  "<|endoftext|> is spelled in text, <|en|> too",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "雨".repeat(200),
  "!?".repeat(150),
  "🙂".repeat(70),
  "ーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーーー",
];

// A deterministic mix of the pools above, to reach the corners of the
// pre-tokeniser (space before every class, whitespace runs before every class).
function generated(count) {
  const pools = [
    ["a", "b", "The", "zebra", "É", "ß"], ["0", "7", "42", "٣", "½"], ["!", "'", "\"", "-", "—", "…", "♪", "$"],
    [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", " \n "], ["'s", "'t", "'re", "'ll", "'d", "'m", "'ve", "'x"],
    ["中", "文", "日本", "한", "ру", "ع", "न्", "ไ", "𓀀"], ["😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "\u200d", "\ufe0f"],
  ];
  let s = 20260101;
  const rnd = (n) => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return (s >>> 8) % n; };
  const out = [];
  for (let i = 0; i < count; i++) {
    let t = "";
    for (let k = 1 + rnd(24); k > 0; k--) { const p = pools[rnd(pools.length)]; t += p[rnd(p.length)]; }
    out.push(t);
  }
  return out;
}
const CORPUS = [...FIXED, ...generated(400)];

function run(name, numLanguages) {
  const tokens = readRanks(name);
  const specials = specialTokens(tokens.length, numLanguages);
  // js-tiktoken's rank format: lines "! <first rank> <base64> <base64> …"; an
  // empty token (multilingual's rank 50,256) cannot be written, so it starts a gap.
  const lines = [];
  tokens.forEach((t, i) => {
    if (!t.length) return;
    if (i === 0 || !tokens[i - 1].length) lines.push(["!", i]);
    lines[lines.length - 1].push(t.toString("base64"));
  });
  const bpeRanks = lines.map((l) => l.join(" ")).join("\n");
  const tik = new Tiktoken({
    pat_str: PATTERN,
    bpe_ranks: bpeRanks,
    special_tokens: Object.fromEntries(specials.map((s) => [s.content, s.id])),
  });
  const hfFiles = buildHF(tokens, specials);
  const hf = new Tokenizer(hfFiles.tokenizerJSON, {});
  const cases = [];
  for (const text of CORPUS) {
    const ids = tik.encode(text, [], []);
    const c = { text, ids };
    if (!text.includes("<|")) { // Hugging Face matches added tokens inside text; tiktoken's ordinary encode does not
      const hfIds = hf.encode(text, { add_special_tokens: false }).ids;
      if (JSON.stringify(hfIds) !== JSON.stringify(ids)) {
        throw new Error(`${name}: js-tiktoken and Hugging Face differ on ${JSON.stringify(text)}:\n${ids}\n${hfIds}`);
      }
      c.hf = true;
    }
    if (tik.decode(ids) !== text) throw new Error(`${name}: js-tiktoken does not round-trip ${JSON.stringify(text)}`);
    cases.push(c);
  }
  // Decoding cut-short and ill-formed byte sequences: every prefix of the ids
  // of multi-byte text, decoded by js-tiktoken (TextDecoder, replacement rule).
  const decodes = [];
  for (const text of ["中文：我们", "𓀀𓀁 ᐊᓂᔑᓈ", "👨‍👩‍👧 🇯🇵", "हिन्दी", "♪♫ naïve"]) {
    const ids = tik.encode(text, [], []);
    for (let k = 1; k <= ids.length; k++) decodes.push({ ids: ids.slice(0, k), text: tik.decode(ids.slice(0, k)) });
    for (let k = 1; k < ids.length; k++) decodes.push({ ids: ids.slice(k), text: tik.decode(ids.slice(k)) });
  }
  const sp = specials.map((s) => s.id);
  decodes.push({ ids: [sp[1], sp[2], ...tik.encode(" Hi", [], []), sp[0]], text: tik.decode([sp[1], sp[2], ...tik.encode(" Hi", [], []), sp[0]]) });
  return { cases, decodes, hfFiles, nMerges: hfFiles.merges.length };
}

const VOCABS = [["gpt2", 99], ["multilingual", 99]];
const golden = {
  comment: "Generated by testdata/tokenizer/golden.mjs (make tokenizer-golden): js-tiktoken ids, equal to @huggingface/tokenizers' where hf is true; decodes by js-tiktoken.",
  references: {
    "js-tiktoken": JSON.parse(fs.readFileSync(path.join(here, "node_modules/js-tiktoken/package.json"), "utf8")).version,
    "@huggingface/tokenizers": JSON.parse(fs.readFileSync(path.join(here, "node_modules/@huggingface/tokenizers/package.json"), "utf8")).version,
  },
  vocabularies: {},
};
for (const [name, nl] of VOCABS) {
  const r = run(name, nl);
  golden.vocabularies[name] = { num_languages: nl, cases: r.cases, decodes: r.decodes };
  if (mode === "record") {
    const dir = path.join(here, "hf", name);
    fs.mkdirSync(dir, { recursive: true });
    const gz = (file, text) => fs.writeFileSync(path.join(dir, file + ".gz"), zlib.gzipSync(text, { level: 9 }));
    gz("tokenizer.json", JSON.stringify(r.hfFiles.tokenizerJSON));
    gz("vocab.json", JSON.stringify(r.hfFiles.vocab));
    gz("merges.txt", "#version: 0.2\n" + r.hfFiles.merges.map((m) => m.join(" ")).join("\n") + "\n");
    gz("added_tokens.json", JSON.stringify(r.hfFiles.addedTokensJSON));
    console.error(`${name}: ${r.cases.length} cases, ${r.decodes.length} decodes, ${r.nMerges} merges`);
  }
}
const out = JSON.stringify(golden, null, 0).replace(/\{"text"/g, '\n{"text"').replace(/\{"ids"/g, '\n{"ids"') + "\n";
if (mode === "record") fs.writeFileSync(path.join(here, "golden.json"), out);
else process.stdout.write(out);
