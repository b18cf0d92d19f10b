// Instruction tuning end to end on the CPU backend, on a JSONL dataset written here (questions
// "Cow 12 says?" whose answers, "moo", a nano model learns in a few seconds): a base model trained
// briefly on it, a fine-tune from it with --init-from, (a) the loss the run reports is the mean
// over reply tokens only (recomputed by hand from the same batches), (b) through `generate --chat`
// the tuned model answers held-out questions right more often than the base; BitGPT fine-tunes
// with another --dropout; --resume of an instruction run is exact; a nanoGPT-named file (no
// tokenizer) fine-tunes with GPT-2's; and the one-line refusals of --init-from and of bad
// instruction data.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { loadCheckpoint, saveCheckpoint } from "../../models/checkpoint.ts";
import { makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { loadDataset } from "../../data/batches.ts";
import { CHAT_TEMPLATE_NAME } from "../../data/chat_template.ts";
import { IGNORE_INDEX } from "../../data/instruction_batches.ts";
import { Generator } from "../../engine/random.ts";
import { fromArray } from "../../engine/creation.ts";
import { noGrad } from "../../engine/autograd.ts";
import { parseMetrics } from "../../cli/metrics.ts";
import { evalLines, runCli } from "./cli_util.ts";
import { cpu } from "../util.ts";

const dir = await Deno.makeTempDir({ prefix: "bitgpt_instruct_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const SOUNDS: Record<string, string> = {
  Cow: "moo",
  Dog: "woof",
  Pig: "oink",
  Sheep: "baa",
  Lion: "roar",
  Frog: "ribbit",
};
const ANIMALS = Object.keys(SOUNDS);
const question = (animal: string, n: number) => `${animal} ${n} says?`;

/** A seeded stream of integers in [0, k) (MINSTD: exact in float64). */
function draws(seed: number): (k: number) => number {
  let s = seed;
  return (k) => (s = (s * 48271) % 2147483647) % k;
}

/** 300 records of an animal and a number 0..999, and 12 questions none of them asks. */
const { RECORDS, HELD_OUT } = (() => {
  const next = draws(12345);
  const records = Array.from({ length: 300 }, () => [ANIMALS[next(6)], next(1000)] as const);
  const asked = new Set(records.map(([a, n]) => question(a, n)));
  const held: [string, number][] = [];
  for (let i = 0; held.length < 12; i++) {
    const [a, n] = [ANIMALS[i % 6], next(1000)];
    if (!asked.has(question(a, n))) held.push([a, n]);
  }
  return { RECORDS: records, HELD_OUT: held };
})();

const DATASET = `${dir}/animals.jsonl`;
await Deno.writeTextFile(
  DATASET,
  RECORDS.map(([a, n]) => JSON.stringify({ prompt: question(a, n), response: SOUNDS[a] }))
    .join("\n") + "\n",
);

/** Flags of a short nano run on the dataset; a record fits a row of 64. */
const RUN = [
  ...["--backend", "cpu", "--batch-size", "8", "--lr", "1e-2", "--warmup-iters", "5"],
  ...["--eval-iters", "2", "--log-interval", "50", "--dataset", DATASET],
];
const iters = (
  n: number,
  every: number,
) => ["--max-iters", `${n}`, "--lr-decay-iters", `${n}`, "--eval-interval", `${every}`];

/** Runs made once, on first use, shared by the tests that read them. */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | null = null;
  return () => (p ??= make());
}

const base = once(async () => {
  const r = await runCli([
    ...["train", "--preset", "nano", "--model", "gpt", "--block-size", "64"],
    ...["--tokenizer", "char", "--out-dir", `${dir}/base`, ...RUN, ...iters(10, 10)],
  ]);
  strictEqual(r.code, 0, r.stderr);
  return r;
});

const tuned = once(async () => {
  await base();
  const r = await runCli([
    ...["train", "--init-from", `${dir}/base`, "--out-dir", `${dir}/tuned`, ...RUN],
    ...iters(120, 60),
  ]);
  strictEqual(r.code, 0, r.stderr);
  return r;
});

/** Ask each held-out question in a fresh conversation; how many replies are exactly right. */
async function score(run: string): Promise<{ right: number; replies: string[] }> {
  const input = HELD_OUT.map(([a, n]) => `${question(a, n)}\n/reset\n`).join("");
  const r = await runCli(
    [
      ...["generate", "--chat", "--out-dir", `${dir}/${run}`, "--backend", "cpu"],
      ...["--temperature", "0", "--max-new-tokens", "8"],
    ],
    input,
  );
  strictEqual(r.code, 0, r.stderr);
  ok(r.stderr.includes(`chat template ${CHAT_TEMPLATE_NAME}`), r.stderr);
  const lines = r.stdout.split("\n");
  const at = HELD_OUT.map(([a, n]) => lines.indexOf(`> ${question(a, n)}`));
  const replies = at.map((i) => lines[i + 1]);
  // One line each, then the next turn.
  deepStrictEqual(at.map((i) => lines[i + 2]), HELD_OUT.map(() => "(conversation cleared)"));
  return { right: replies.filter((x, i) => x === SOUNDS[HELD_OUT[i][0]]).length, replies };
}

Deno.test("instruct: a run on a .jsonl dataset trains on replies only and records the template", async () => {
  const { stdout } = await base();
  ok(
    /^data: .*animals\.jsonl, char tokenizer \(\d+ tokens\), chat template bitgpt-chat-1, 270 train \/ 30 val records/m
      .test(stdout),
    stdout,
  );
  const ckpt = loadCheckpoint(await Deno.readFile(`${dir}/base/ckpt.safetensors`));
  const tok = JSON.parse(ckpt.tokenizer!);
  strictEqual(tok.chatTemplate, CHAT_TEMPLATE_NAME);
  ok(tok.chars.includes("#") && tok.chars.includes("\u0003"), "the template's characters");
  ckpt.model.dispose();
});

Deno.test("instruct: --init-from starts at iteration 0 from the base's weights; its loss is over replies only", async () => {
  const { stdout } = await tuned();
  ok(stdout.includes(`initialising from ${dir}/base/ckpt.safetensors (gpt, iteration 9`), stdout);
  ok(/^done: 120 iterations/m.test(stdout), stdout);
  const reported = evalLines(stdout)[0];
  strictEqual(reported.iter, 0);
  // By hand: the base's weights on the batches the run's step-0 evaluation drew (seed 1337 + 3
  // for evaluation on training data), cross-entropy averaged over targets that are not ignored.
  const ckpt = loadCheckpoint(await Deno.readFile(`${dir}/base/ckpt.safetensors`), {
    backend: cpu,
  });
  const data = await loadDataset({
    dataset: DATASET,
    tokenizer: "char",
    charVocab: JSON.parse(ckpt.tokenizer!),
  });
  const gens = {
    train: new Generator(1338),
    val: new Generator(1339),
    evalTrain: new Generator(1340),
  };
  const src = data.sources(gens, 8, 64).evalTrain;
  const model = ckpt.model.eval();
  let replies = 0;
  let everything = 0;
  for (let k = 0; k < 2; k++) {
    const { x, y } = src.next();
    const logits = noGrad(() =>
      model.forward(fromArray(x, [8, 64], { dtype: "i32", backend: cpu })).logits
    );
    const z = Float64Array.from(await logits.data());
    logits.dispose();
    const V = model.config.vocabSize;
    const nll = (row: number, target: number) => {
      const r = z.subarray(row * V, (row + 1) * V);
      const m = Math.max(...r);
      return m + Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0)) - r[target];
    };
    let [sum, n, sumAll, nAll] = [0, 0, 0, 0];
    for (let i = 0; i < 8 * 64; i++) {
      if (y[i] !== IGNORE_INDEX) [sum, n] = [sum + nll(i, y[i]), n + 1];
      if (i % 64 < 63) [sumAll, nAll] = [sumAll + nll(i, x[i + 1]), nAll + 1]; // every next id
    }
    ok(n > 0 && n < nAll / 4, `${n} reply targets of ${nAll}`);
    replies += sum / n / 2;
    everything += sumAll / nAll / 2;
  }
  model.dispose();
  ok(Math.abs(replies - reported.train) < 1.5e-4, `by hand ${replies}, reported ${reported.train}`);
  // Loss over every position would be another number: the prompts are not trained on.
  ok(Math.abs(everything - reported.train) > 0.1, `${everything} vs ${reported.train}`);
});

Deno.test("instruct: generate --chat, the tuned model answers held-out questions better than the base", async () => {
  await tuned();
  const before = await score("base");
  const after = await score("tuned");
  ok(after.right >= 9, `tuned: ${after.right}/12 right: ${JSON.stringify(after.replies)}`);
  ok(after.right > before.right, `base ${before.right}/12, tuned ${after.right}/12`);
  // The replies stopped at the end marker: no end marker or header leaks into them.
  deepStrictEqual(after.replies.filter((x) => x.includes("#") || x.includes("\u0003")), []);
});

Deno.test("instruct: BitGPT fine-tunes from a BitGPT base with another --dropout; --resume keeps the template", async () => {
  const flags = [...RUN, "--block-size", "64"];
  const b = await runCli([
    ...["train", "--preset", "nano", "--model", "bitgpt", "--tokenizer", "char"],
    ...["--out-dir", `${dir}/bitbase`, ...flags, ...iters(3, 3), "--decay-lr", "false"],
  ]);
  strictEqual(b.code, 0, b.stderr);
  const t = await runCli([
    ...["train", "--init-from", `${dir}/bitbase/ckpt.safetensors`, "--dropout", "0.1"],
    ...["--out-dir", `${dir}/bittuned`, ...RUN, ...iters(3, 3), "--decay-lr", "false"],
  ]);
  strictEqual(t.code, 0, t.stderr);
  ok(/^model: bitgpt, /m.test(t.stdout), t.stdout);
  const r = await runCli(["train", "--resume", "--out-dir", `${dir}/bittuned`, "--max-iters", "4"]);
  strictEqual(r.code, 0, r.stderr);
  const ckpt = loadCheckpoint(await Deno.readFile(`${dir}/bittuned/last.safetensors`));
  strictEqual(ckpt.kind, "bitgpt");
  strictEqual(ckpt.iteration, 4);
  strictEqual(ckpt.config.dropout, 0.1);
  strictEqual(JSON.parse(ckpt.tokenizer!).chatTemplate, CHAT_TEMPLATE_NAME);
  ckpt.model.dispose();
});

Deno.test("instruct: --resume of an instruction run is exact: the losses equal the uninterrupted run's", async () => {
  const flags = (out: string, n: number) => [
    ...["train", "--preset", "nano", "--model", "gpt", "--block-size", "64", "--tokenizer", "char"],
    ...["--out-dir", `${dir}/${out}`, "--backend", "cpu", "--lr", "1e-2", "--warmup-iters", "5"],
    ...["--dataset", DATASET, "--batch-size", "4", "--eval-iters", "2", "--eval-interval", "6"],
    ...["--max-iters", `${n}`, "--lr-decay-iters", "16", "--log-interval", "1"],
  ];
  for (const args of [flags("full", 16), flags("legs", 9)]) {
    const r = await runCli(args);
    strictEqual(r.code, 0, r.stderr);
  }
  const r = await runCli(["train", "--resume", "--out-dir", `${dir}/legs`, "--max-iters", "16"]);
  strictEqual(r.code, 0, r.stderr);
  const losses = async (run: string) =>
    parseMetrics(await Deno.readTextFile(`${dir}/${run}/metrics.jsonl`))
      .filter((m) => m.iter >= 9)
      .map((m) => (m.type === "eval" ? [m.iter, m.train, m.val] : [m.iter, m.loss]));
  const want = await losses("full");
  ok(want.length > 8, JSON.stringify(want));
  deepStrictEqual(await losses("legs"), want);
});

Deno.test("instruct: --init-from a nanoGPT-named file fine-tunes with GPT-2's tokenizer and the template", async () => {
  // Weights under nanoGPT's names and nothing else: no tokenizer, no head count.
  const config = makeConfig({ vocabSize: 50257, blockSize: 24, nLayer: 1, nHead: 2, nEmbd: 8 });
  const model = createModel("gpt", config, { backend: cpu, generator: new Generator(1) });
  const { tensors } = readSafetensors(await saveCheckpoint(model));
  model.dispose();
  await Deno.mkdir(`${dir}/foreign`);
  await Deno.writeFile(`${dir}/foreign/model.safetensors`, writeSafetensors(tensors, {}));
  const r = await runCli([
    ...["train", "--init-from", `${dir}/foreign/model.safetensors`, "--n-head", "2"],
    ...["--out-dir", `${dir}/bpe`, "--dataset", DATASET, "--backend", "cpu", "--batch-size", "2"],
    ...["--max-iters", "1", "--eval-iters", "1", "--decay-lr", "false"],
  ]);
  strictEqual(r.code, 0, r.stderr);
  ok(r.stdout.includes("(gpt, a nanogpt file); a new run from iteration 0"), r.stdout);
  ok(
    /^data: .*, gpt2 tokenizer \(50257 tokens\), chat template bitgpt-chat-1/m.test(r.stdout),
    r.stdout,
  );
  const ckpt = loadCheckpoint(await Deno.readFile(`${dir}/bpe/last.safetensors`));
  deepStrictEqual(JSON.parse(ckpt.tokenizer!), {
    kind: "gpt2",
    encoding: "r50k_base",
    vocabSize: 50257,
    chatTemplate: CHAT_TEMPLATE_NAME,
  });
  ckpt.model.dispose();
});

Deno.test("instruct: one-line refusals of --init-from and of bad instruction data", async () => {
  await base();
  const refuse = async (args: string[], pattern: RegExp, code = 1) => {
    const r = await runCli(["train", ...args]);
    strictEqual(r.code, code, `${args.join(" ")}\n${r.stdout}\n${r.stderr}`);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error: "));
    strictEqual(errors.length, 1, r.stderr);
    ok(pattern.test(errors[0]), errors[0]);
  };
  const from = ["--init-from", `${dir}/base`];
  await refuse(
    [...from, "--resume", "--out-dir", `${dir}/base`],
    /^error: --init-from starts a new run and --resume continues/,
    2,
  );
  await refuse(
    [...from, "--n-layer", "3", "--out-dir", `${dir}/x1`, ...RUN],
    /^error: --n-layer 3 does not match the --init-from checkpoint '.*base\/ckpt\.safetensors' \(2\)/,
    2,
  );
  await refuse([...from, "--out-dir", `${dir}/base`, "--overwrite"], /is in --out-dir/, 2);
  await refuse(
    ["--init-from", `${dir}/nowhere`, "--out-dir", `${dir}/x2`],
    /^error: --init-from '.*nowhere': No such file/,
  );
  // A char model trained on plain text lacks the template's characters.
  await Deno.writeTextFile(`${dir}/plain.txt`, "Cow says moo. Dog says woof. ".repeat(40));
  const plain = await runCli([
    ...["train", "--preset", "nano", "--tokenizer", "char", "--out-dir", `${dir}/plain`],
    ...["--dataset", `${dir}/plain.txt`, "--backend", "cpu", ...iters(1, 1), "--eval-iters", "1"],
    ...["--decay-lr", "false"],
  ]);
  strictEqual(plain.code, 0, plain.stderr);
  await refuse(
    ["--init-from", `${dir}/plain`, "--out-dir", `${dir}/x3`, ...RUN],
    /^error: --init-from '.*plain\/ckpt\.safetensors': '.*animals\.jsonl': the char vocabulary of 12 characters lacks \d+ that the records need: the chat template's '#' \(U\+0023\), .*; line 1's '.*; and those of \d+ more lines; a char model is tuned only on text made of its own characters/,
  );
  // Bad records name the file and the line; a reply longer than the block is refused.
  await Deno.writeTextFile(
    `${dir}/bad.jsonl`,
    `{"prompt": "a", "response": "b"}\n\n{"prompt": "a", "reply": "b"}\n`,
  );
  await refuse(
    ["--dataset", `${dir}/bad.jsonl`, "--tokenizer", "char", "--out-dir", `${dir}/x4`],
    /^error: '.*bad\.jsonl' line 3: missing "response"$/,
  );
  await Deno.writeTextFile(
    `${dir}/long.jsonl`,
    `{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": "${"b".repeat(40)}"}\n`,
  );
  await refuse(
    [
      ...["--dataset", `${dir}/long.jsonl`, "--tokenizer", "char", "--preset", "nano"],
      "--out-dir",
      `${dir}/x5`,
    ],
    /^error: '.*long\.jsonl' line 2: the reply and its end marker are 41 tokens, which with the 15-token assistant header do not fit block_size \+ 1 = 33/,
  );
  // Nothing was left behind by the refused runs.
  for (const x of ["x1", "x2", "x3", "x4", "x5"]) {
    ok(!(await Deno.stat(`${dir}/${x}`).catch(() => null)), `${x} was created`);
  }
});
