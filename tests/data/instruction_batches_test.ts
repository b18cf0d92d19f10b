// Batches of instruction records: targets are ignored exactly where the next id is not part of a
// reply, every row is whole records then padding (no reply ever cut), a batch is a function of
// the generator's seed and offset, long records keep their reply and lose the start of their
// prompt (or are refused), and the GPT and BitGPT losses on such a batch are the mean over
// reply targets, as computed by hand.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { type ChatMessage, ChatTemplate, chatTemplateChars } from "../../data/chat_template.ts";
import {
  fitRecords,
  IGNORE_INDEX,
  instructionBatches,
  InstructionSampler,
} from "../../data/instruction_batches.ts";
import { type EncodedRecord, encodeRecords, parseInstructions } from "../../data/instructions.ts";
import { CharTokenizer, Gpt2Tokenizer, type Tokenizer } from "../../data/tokenizer.ts";
import { noGrad } from "../../engine/autograd.ts";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { cpu } from "../util.ts";

/** `n` question/answer records of varied lengths (some answers two turns long). */
function records(n: number, tok: Tokenizer): { encoded: EncodedRecord[]; template: ChatTemplate } {
  const lines = Array.from({ length: n }, (_, i) => {
    const q = `What is ${i} times ${i % 7}?${" Think.".repeat(i % 3)}`;
    const a = `${i * (i % 7)}`;
    return i % 5 === 0
      ? JSON.stringify({
        messages: [
          { role: "user", content: `What is ${i}?` },
          { role: "assistant", content: a },
          { role: "user", content: "Sure?" },
          { role: "assistant", content: "Yes." },
        ],
      })
      : JSON.stringify({ prompt: q, response: a });
  });
  const parsed = parseInstructions(lines.join("\n"), "qa.jsonl");
  const template = new ChatTemplate(tok);
  return { encoded: encodeRecords(parsed, template, "qa.jsonl"), template };
}

const charTok = CharTokenizer.fromText("0123456789 ?.WTYhatisemnkSury" + chatTemplateChars());

/** Split a row of T + 1 ids back into the records it was packed from, and its padding. */
function unpack(row: Int32Array, recs: readonly EncodedRecord[], pad: number): EncodedRecord[] {
  const out: EncodedRecord[] = [];
  let at = 0;
  outer: while (at < row.length) {
    for (const r of recs) {
      if (at + r.ids.length <= row.length && r.ids.every((id, i) => row[at + i] === id)) {
        out.push(r);
        at += r.ids.length;
        continue outer;
      }
    }
    break;
  }
  ok(out.length > 0, "a row starts with a whole record");
  ok(row.subarray(at).every((id) => id === pad), `only padding after the records, at ${at}`);
  return out;
}

for (const [name, tok] of [["char", charTok], ["gpt2", new Gpt2Tokenizer()]] as const) {
  Deno.test(`instruction batches (${name}): rows of whole records, targets only on replies`, () => {
    const { encoded, template } = records(40, tok);
    const T = 96;
    const src = new InstructionSampler(encoded, T, 6, new Generator(7), template.endId);
    let packedTwo = false;
    for (let k = 0; k < 5; k++) {
      const { x, y } = src.next();
      strictEqual(x.length, 6 * T);
      for (let b = 0; b < 6; b++) {
        const xs = x.subarray(b * T, (b + 1) * T);
        const ys = y.subarray(b * T, (b + 1) * T);
        // Rebuild the row's T + 1 ids and the mask its records say it has.
        const row = new Int32Array(T + 1).fill(template.endId);
        row.set(xs);
        for (let t = 0; t < T; t++) if (ys[t] !== IGNORE_INDEX) row[t + 1] = ys[t];
        const packed = unpack(row, encoded, template.endId);
        packedTwo ||= packed.length > 1;
        const mask = new Uint8Array(T + 1);
        let at = 0;
        for (const r of packed) [mask.set(r.mask, at), at += r.ids.length];
        for (let t = 0; t < T; t++) {
          // The target is the next id exactly where that id belongs to a reply; ignored elsewhere.
          if (mask[t + 1]) strictEqual(ys[t], row[t + 1], `row ${b} position ${t}`);
          else strictEqual(ys[t], IGNORE_INDEX, `row ${b} position ${t}`);
        }
      }
    }
    ok(packedTwo, "some rows hold more than one record");
  });
}

Deno.test("instruction batches: a batch is a function of the generator's seed and offset", () => {
  const { encoded, template } = records(30, charTok);
  const make = (g: Generator) => new InstructionSampler(encoded, 96, 4, g, template.endId);
  const a = make(new Generator(3));
  const b = make(new Generator(3));
  const first = a.next();
  deepStrictEqual(b.next(), first);
  const state = a.gen.state();
  const second = a.next();
  deepStrictEqual(make(Generator.fromState(state)).next(), second); // resumed from a checkpoint
  ok(second.x.some((v, i) => v !== first.x[i]), "the stream moves on");
  const other = make(new Generator(4)).next();
  ok(other.x.some((v, i) => v !== first.x[i]), "another seed, other batches");
  // The loop's three roles draw from their own generators: train, evalTrain over the same records.
  const split = instructionBatches(
    { train: encoded.slice(0, 27), val: encoded.slice(27) },
    template,
    "qa.jsonl",
  );
  const gens = () => ({
    train: new Generator(5),
    val: new Generator(6),
    evalTrain: new Generator(5),
  });
  const s1 = split.sources(gens(), 4, 96);
  deepStrictEqual(s1.train.next(), s1.evalTrain.next());
  deepStrictEqual(split.sources(gens(), 4, 96).val.next(), s1.val.next());
});

Deno.test("instruction batches: long records lose the start of the prompt, never a reply", () => {
  const t = new ChatTemplate(charTok);
  const header = t.assistantHeader().length;
  const enc = (line: number, messages: ChatMessage[]) => ({ ...t.encode(messages), line });
  const long = enc(1, [
    { role: "user", content: "What is 1 times 2? Think. Think. Think." },
    { role: "assistant", content: "2" },
  ]);
  const turns = enc(2, [
    { role: "user", content: "Sure?" },
    { role: "assistant", content: "Yes. Yes. Yes." },
    { role: "user", content: "Sure?" },
    { role: "assistant", content: "2" },
  ]);
  // Blocks that cut `long` in its prompt and `turns` two ids into its first reply.
  const firstReply = turns.mask.indexOf(1);
  const T = turns.ids.length - firstReply - 3;
  ok(long.ids.length - (T + 1) < long.mask.indexOf(1) - header, "long's cut is in its prompt");
  const { records: fitted, truncated } = fitRecords([long, turns], T, header, "qa.jsonl");
  deepStrictEqual(truncated, [
    { line: 1, dropped: long.ids.length - (T + 1) },
    { line: 2, dropped: firstReply + 2 },
  ]);
  for (const [before, after] of [[long, fitted[0]], [turns, fitted[1]]]) {
    strictEqual(after.ids.length, T + 1);
    deepStrictEqual(after.ids, before.ids.slice(-(T + 1))); // the end is kept
    strictEqual(after.mask[0], 0);
    strictEqual(charTok.decode(after.ids.filter((_, i) => after.mask[i] === 1)), "2\u0003");
  }
  // What is left of the cut reply is context now: only the last reply is trained on.
  strictEqual(charTok.decode(fitted[1].ids.subarray(0, 13)), "s. Yes. Yes.\u0003");
  // A reply that cannot fit with its header is refused.
  throws(
    () => fitRecords([long], 5, header, "qa.jsonl"),
    /^DataError: 'qa\.jsonl' line 1: the reply and its end marker are 2 tokens, which with the 15-token assistant header do not fit block_size \+ 1 = 6; shorten the reply or use a larger --block-size$/,
  );
  // Records that fit are the very same objects; the sampler refuses unfitted ones.
  strictEqual(fitRecords([turns], 200, header, "qa.jsonl").records[0], turns);
  throws(
    () => new InstructionSampler([long], 10, 1, new Generator(1), t.endId),
    /the record of line 1 has \d+ ids, more than block_size \+ 1 = 11; fit the records first/,
  );
  const split = instructionBatches({ train: [long], val: [turns] }, t, "qa.jsonl");
  deepStrictEqual(split.fit(T).map((c) => c.line), [1, 2]);
  const batch = split.sources(
    { train: new Generator(1), val: new Generator(2), evalTrain: new Generator(3) },
    2,
    T,
  ).train.next();
  strictEqual(charTok.decode(batch.x.subarray(0, T)), charTok.decode(fitted[0].ids.subarray(0, T)));
});

for (const kind of ["gpt", "bitgpt"] as const) {
  Deno.test(`instruction batches: the ${kind} loss is the mean over reply targets only`, async () => {
    const { encoded, template } = records(20, charTok);
    const T = 96;
    const { x, y } = new InstructionSampler(encoded, T, 3, new Generator(11), template.endId)
      .next();
    const config = makeConfig({
      vocabSize: charTok.vocabSize,
      blockSize: T,
      nLayer: 1,
      nHead: 2,
      nEmbd: 16,
    });
    const model = createModel(kind, config, { backend: cpu, generator: new Generator(2) }).eval();
    const ids = fromArray(x, [3, T], { dtype: "i32", backend: cpu });
    const targets = fromArray(y, [3, T], { dtype: "i32", backend: cpu });
    const { loss, logits } = noGrad(() => model.forward(ids, targets));
    const z = Float64Array.from(await logits!.data());
    const V = config.vocabSize;
    let [sum, n] = [0, 0];
    for (let i = 0; i < 3 * T; i++) {
      if (y[i] === IGNORE_INDEX) continue;
      const row = z.subarray(i * V, (i + 1) * V);
      const m = Math.max(...row);
      sum += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[y[i]];
      n++;
    }
    ok(n > 0 && n < (3 * T) / 3, `${n} reply targets`);
    const got = await loss!.item();
    ok(Math.abs(got - sum / n) < 1e-5, `loss ${got}, by hand ${sum / n}`);
    model.dispose();
  });
}
