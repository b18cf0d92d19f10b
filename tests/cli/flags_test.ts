// Flag parsing for `train` and `generate`: the original's defaults, every flag's type, the
// aliases, presets under explicit flags, and each bad input rejected with a one-line message.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  FlagError,
  parseTrainArgs,
  showValue,
  TRAIN_DEFAULTS,
  TRAIN_FLAGS,
  type TrainConfig,
} from "../../cli/flags.ts";
import {
  GENERATE_DEFAULTS,
  GENERATE_FLAGS,
  type GenerateConfig,
  parseGenerateArgs,
} from "../../cli/generate_flags.ts";

function train(argv: string[], presets?: (n: string) => Partial<TrainConfig>): TrainConfig {
  const r = parseTrainArgs(argv, presets);
  if (r.help) throw new Error("unexpected --help");
  return r.config;
}

function gen(argv: string[]): GenerateConfig {
  const r = parseGenerateArgs(argv);
  if (r.help) throw new Error("unexpected --help");
  return r.config;
}

/** Assert that parsing throws a one-line FlagError whose message matches `re`. */
function rejects(f: () => unknown, re: RegExp): void {
  throws(f, (e: unknown) => {
    ok(e instanceof FlagError, `expected FlagError, got ${e}`);
    ok(re.test(e.message), `message '${e.message}' does not match ${re}`);
    ok(!e.message.includes("\n"), `message is not one line: ${e.message}`);
    return true;
  });
}

Deno.test("train: defaults equal the original's table", () => {
  const c = train([]);
  deepStrictEqual(
    {
      batchSize: c.batchSize,
      blockSize: c.blockSize,
      maxIters: c.maxIters,
      evalIters: c.evalIters,
      evalInterval: c.evalInterval,
      lr: c.learningRate,
      nHead: c.nHead,
      nLayer: c.nLayer,
      nEmbd: c.nEmbd,
      dropout: c.dropout,
      weightDecay: c.weightDecay,
      decayLr: c.decayLr,
      warmupIters: c.warmupIters,
      lrDecayIters: c.lrDecayIters,
      minLr: c.minLr,
      wandbLog: c.wandbLog,
      seed: c.seed,
      verbose: c.verbose,
    },
    {
      batchSize: 64,
      blockSize: 256,
      maxIters: 500000,
      evalIters: 200,
      evalInterval: 2000,
      lr: 6e-4,
      nHead: 4,
      nLayer: 4,
      nEmbd: 384,
      dropout: 0.2,
      weightDecay: 1e-1,
      decayLr: true,
      warmupIters: 200,
      lrDecayIters: 500000,
      minLr: 6e-5,
      wandbLog: false,
      seed: 1337,
      verbose: 0,
    },
  );
  // Ours in addition.
  strictEqual(c.model, "bitgpt");
  strictEqual(c.tokenizer, "gpt2");
  strictEqual(c.dataset, "shakespeare");
  strictEqual(c.outDir, "out");
  strictEqual(c.resume, false);
  strictEqual(c.gradClip, 1.0);
  strictEqual(c.logInterval, 100);
  strictEqual(c.bias, true);
  strictEqual(c.pos, "learned");
  deepStrictEqual([c.beta1, c.beta2, c.schedule], [0.9, 0.95, "cosine"]);
  deepStrictEqual(c, { ...TRAIN_DEFAULTS });
});

Deno.test("train: every flag parses to its typed value", () => {
  const argv = [
    ...["--batch-size", "8", "--block-size", "32", "--max-iters", "50", "--eval-iters", "3"],
    ...["--eval-interval", "10", "--lr", "1e-3", "--n-head", "2", "--n-layer", "3"],
    ...["--n-embd", "48", "--dropout", "0.1", "--weight-decay", "0.05", "--decay-lr", "false"],
    ...["--warmup-iters", "5", "--lr-decay-iters", "40", "--min-lr", "1e-4", "--wandb-log", "true"],
    ...["--wandb-project", "p", "--seed", "7", "--verbose", "2", "--log-interval", "5"],
    ...["--model", "gpt", "--tokenizer", "char", "--dataset", "x.txt", "--vocab-size", "70"],
    ...["--out-dir", "o", "--resume", "--backend", "cpu", "--grad-clip", "0", "--bias", "false"],
    ...["--overwrite"],
    ...["--pos", "rope", "--beta1", "0.8", "--beta2", "0.99", "--schedule", "bitnet"],
    ...["--profile", "--threads", "3", "--init-from", "base/ckpt.safetensors"],
  ];
  const c = train(argv);
  deepStrictEqual(c, {
    batchSize: 8,
    blockSize: 32,
    maxIters: 50,
    evalIters: 3,
    evalInterval: 10,
    learningRate: 1e-3,
    nHead: 2,
    nLayer: 3,
    nEmbd: 48,
    dropout: 0.1,
    weightDecay: 0.05,
    decayLr: false,
    warmupIters: 5,
    lrDecayIters: 40,
    minLr: 1e-4,
    wandbLog: true,
    wandbProject: "p",
    seed: 7,
    verbose: 2,
    logInterval: 5,
    model: "gpt",
    preset: "",
    tokenizer: "char",
    dataset: "x.txt",
    vocabSize: 70,
    outDir: "o",
    resume: true,
    initFrom: "base/ckpt.safetensors",
    overwrite: true,
    backend: "cpu",
    gradClip: 0,
    bias: false,
    pos: "rope",
    beta1: 0.8,
    beta2: 0.99,
    schedule: "bitnet",
    profile: true,
    threads: 3,
  });
  // Every flag of the table was exercised (preset has its own test).
  const given = new Set(argv.filter((a) => a.startsWith("--")).map((a) => a.slice(2)));
  for (const s of TRAIN_FLAGS) ok(s.name === "preset" || given.has(s.name), `untested --${s.name}`);
});

Deno.test("train: --decay-lr false is really false; bare booleans are true; = form works", () => {
  strictEqual(train(["--decay-lr", "false"]).decayLr, false);
  strictEqual(train(["--decay-lr=false"]).decayLr, false);
  strictEqual(train(["--decay-lr", "0"]).decayLr, false);
  strictEqual(train(["--decay-lr", "False"]).decayLr, false);
  strictEqual(train(["--resume"]).resume, true);
  strictEqual(train(["--resume", "--seed", "3"]).seed, 3);
  strictEqual(train(["--lr=3e-4"]).learningRate, 3e-4);
});

Deno.test("train: aliases: --d, --wd and the original's underscore spellings", () => {
  strictEqual(train(["--d", "0.3"]).dropout, 0.3);
  strictEqual(train(["--wd", "0.01"]).weightDecay, 0.01);
  strictEqual(train(["--eval_iters", "5"]).evalIters, 5);
  strictEqual(train(["--eval_interval", "9"]).evalInterval, 9);
  strictEqual(train(["--wandb_log", "false"]).wandbLog, false);
  rejects(() => train(["--dropout", "0.1", "--d", "0.2"]), /--dropout given twice/);
});

Deno.test("train: --preset sets values and explicit flags override them", () => {
  const presets = (name: string): Partial<TrainConfig> => {
    if (name !== "baby") throw new FlagError(`--preset: unknown preset '${name}'`);
    return { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 64, batchSize: 12 };
  };
  const c = train(["--preset", "baby", "--n-embd", "64", "--batch-size", "4"], presets);
  strictEqual(c.preset, "baby");
  strictEqual(c.nEmbd, 64);
  strictEqual(c.batchSize, 4);
  strictEqual(c.blockSize, 64);
  strictEqual(c.nLayer, 4);
  // Order on the command line does not matter: explicit flags always win.
  strictEqual(train(["--n-embd", "64", "--preset", "baby"], presets).nEmbd, 64);
  rejects(() => train(["--preset", "huge"], presets), /unknown preset 'huge'/);
  // Explicit values are reported separately (resume uses them over the checkpoint's).
  const r = parseTrainArgs(["--preset", "baby", "--lr", "1e-3"], presets);
  ok(!r.help);
  deepStrictEqual(r.explicit, { preset: "baby", learningRate: 1e-3 });
});

Deno.test("train: bad inputs are one-line errors naming the flag", () => {
  rejects(() => train(["--bogus", "1"]), /unknown flag --bogus/);
  rejects(() => train(["--n-emb", "1"]), /unknown flag --n-emb; did you mean --n-embd\?/);
  rejects(() => train(["--batch-size", "-3"]), /--batch-size: must be at least 1, got -3/);
  rejects(() => train(["--batch-size", "0"]), /--batch-size: must be at least 1/);
  rejects(() => train(["--block-size", "2.5"]), /--block-size: expected an integer, got '2.5'/);
  rejects(() => train(["--n-head", "4.0"]), /--n-head: expected an integer/);
  rejects(() => train(["--max-iters", "lots"]), /--max-iters: expected an integer/);
  rejects(() => train(["--lr", "fast"]), /--lr: expected a number, got 'fast'/);
  rejects(() => train(["--lr", "0"]), /--lr: must be greater than 0/);
  rejects(() => train(["--lr", "NaN"]), /--lr: expected a number/);
  rejects(() => train(["--warmup-iters", "-1"]), /--warmup-iters: must be 0 or more/);
  rejects(() => train(["--dropout", "1"]), /--dropout: must be less than 1/);
  rejects(() => train(["--dropout", "-0.1"]), /--dropout: must be 0 or more/);
  rejects(() => train(["--decay-lr", "maybe"]), /--decay-lr: expected true or false/);
  rejects(() => train(["--decay-lr=maybe"]), /--decay-lr: expected true or false/);
  rejects(() => train(["--model", "llama"]), /--model: expected one of gpt, bitgpt; got 'llama'/);
  rejects(() => train(["--tokenizer", "bpe"]), /--tokenizer: expected one of gpt2, char/);
  rejects(() => train(["--backend", "cuda"]), /--backend: expected one of auto, webgpu, wasm, cpu/);
  rejects(() => train(["--verbose", "3"]), /--verbose: must be at most 2/);
  rejects(() => train(["--seed", "-1"]), /--seed: must be 0 or more/);
  rejects(() => train(["--grad-clip", "-1"]), /--grad-clip: must be 0 or more/);
  rejects(() => train(["--lr"]), /--lr: missing value/);
  rejects(() => train(["--lr", "--seed", "1"]), /--lr: missing value/);
  rejects(() => train(["extra"]), /unexpected argument 'extra'/);
  rejects(() => train(["--seed", "1", "--seed", "2"]), /--seed given twice/);
  rejects(
    () => train(["--n-embd", "100", "--n-head", "3"]),
    /--n-embd \(100\) must be divisible by --n-head \(3\)/,
  );
  rejects(() => train(["--min-lr", "1e-3", "--lr", "6e-4"]), /--min-lr \(0.001\) must not exceed/);
  rejects(
    () => train(["--warmup-iters", "100", "--lr-decay-iters", "50"]),
    /--lr-decay-iters \(50\) must be greater than --warmup-iters \(100\)/,
  );
  // ...but without decay the schedule lengths do not matter.
  strictEqual(
    train(["--warmup-iters", "100", "--lr-decay-iters", "50", "--decay-lr", "false"])
      .lrDecayIters,
    50,
  );
  rejects(() => train(["--dataset", ""]), /--dataset: must not be empty/);
  rejects(() => train(["--beta2", "1"]), /--beta2: must be less than 1/);
  rejects(
    () => train(["--pos", "rope", "--n-embd", "12", "--n-head", "4"]),
    /--pos rope needs an even head size; --n-embd \/ --n-head is 3/,
  );
});

Deno.test("train: --help lists every flag with its true default", () => {
  const r = parseTrainArgs(["--help"]);
  ok(r.help);
  for (const s of TRAIN_FLAGS) {
    const line = r.text.split("\n").find((l) =>
      /^--[\w-]+[ ,]/.test(l.trimStart()) &&
      l.trimStart().split(/[ ,]/)[0] === `--${s.name}`
    );
    ok(line, `--help lacks --${s.name}`);
    const d = TRAIN_DEFAULTS[s.key];
    const shown = s.kind.type === "float" && Number.isInteger(d) ? `${d}.0` : showValue(d);
    ok(line.endsWith(`(default: ${shown})`), `--${s.name}: '${line}' should end with ${shown}`);
  }
  ok(r.text.includes("--dropout, --d"));
  ok(r.text.includes("(default: 6e-4)") && r.text.includes("(default: 6e-5)"));
  ok(r.text.includes("--grad-clip X") && r.text.includes("(default: 1.0)"));
  // --help wins over other (even bad) flags, as is usual.
  ok(parseTrainArgs(["--seed", "1", "-h"]).help);
});

Deno.test("generate: defaults equal the original's, every flag parses", () => {
  const d = gen([]);
  deepStrictEqual(
    [d.prompt, d.numSamples, d.maxNewTokens, d.temperature, d.topK],
    ["", 2, 2000, 1.0, 200],
  );
  deepStrictEqual(d, { ...GENERATE_DEFAULTS });
  const argv = [
    ...["--prompt", "ROMEO:", "--num-samples", "3", "--max-new-tokens", "40"],
    ...["--temperature", "0.8", "--top-k", "5", "--top-p", "0.9", "--seed", "9"],
    ...["--out-dir", "o", "--backend", "webgpu", "--chat", "--ternary", "false", "--verbose", "1"],
    ...["--allow-non-finite", "--n-head", "3", "--profile", "true", "--threads", "1"],
  ];
  deepStrictEqual(gen(argv), {
    prompt: "ROMEO:",
    numSamples: 3,
    maxNewTokens: 40,
    temperature: 0.8,
    topK: 5,
    topP: 0.9,
    seed: 9,
    outDir: "o",
    backend: "webgpu",
    chat: true,
    ternary: false,
    verbose: 1,
    allowNonFinite: true,
    nHead: 3,
    profile: true,
    threads: 1,
  });
  const given = new Set(argv.filter((a) => a.startsWith("--")).map((a) => a.slice(2)));
  for (const s of GENERATE_FLAGS) ok(given.has(s.name), `untested --${s.name}`);
  // A prompt may look like anything but a flag, including an empty string or a negative number.
  strictEqual(gen(["--prompt", ""]).prompt, "");
  strictEqual(gen(["--prompt", "-1"]).prompt, "-1");
  strictEqual(gen(["--temperature", "0"]).temperature, 0);
});

Deno.test("generate: bad inputs are one-line errors", () => {
  rejects(() => gen(["--top-k", "0"]), /--top-k: must be at least 1, got 0/);
  rejects(() => gen(["--temperature", "-0.5"]), /--temperature: must be 0 or more/);
  rejects(() => gen(["--top-p", "0"]), /--top-p: must be greater than 0/);
  rejects(() => gen(["--top-p", "1.5"]), /--top-p: must be at most 1/);
  rejects(() => gen(["--num-samples", "1.5"]), /--num-samples: expected an integer/);
  rejects(() => gen(["--max-new-tokens", "-5"]), /--max-new-tokens: must be at least 1/);
  rejects(() => gen(["--batch-size", "4"]), /generate: unknown flag --batch-size/);
  rejects(() => gen(["--out-dir", ""]), /--out-dir: must not be empty/);
});

Deno.test("generate: --help names greedy temperature 0 and every default", () => {
  const r = parseGenerateArgs(["--help"]);
  ok(r.help);
  ok(r.text.includes("0 = greedy"));
  for (const s of GENERATE_FLAGS) {
    const d = GENERATE_DEFAULTS[s.key];
    const shown = s.kind.type === "float" && Number.isInteger(d) ? `${d}.0` : showValue(d);
    ok(r.text.includes(`(default: ${shown})`), `--${s.name} default ${shown} missing`);
  }
});
