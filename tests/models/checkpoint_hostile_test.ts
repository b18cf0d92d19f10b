// Hostile checkpoints (issue 14), one per case seen: non-finite weights anywhere, configs far
// larger than the file, a shifted header, repeated keys, a tied weight stored twice with two
// values, and metadata of the wrong type or range. Each must be one CheckpointError naming the
// problem, found before the model is allocated where the file can tell.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import {
  CheckpointError,
  loadCheckpoint,
  type LoadCheckpointOptions,
  saveCheckpoint,
} from "../../models/checkpoint.ts";
import { DEFAULT_TRAIN, makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { AdamW } from "../../nn/optim.ts";
import { cpu } from "../util.ts";

const CFG = makeConfig({ vocabSize: 13, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8 });
const IDS = () =>
  fromArray(Int32Array.from([1, 5, 2, 7, 3, 0, 12, 4]), [2, 4], { dtype: "i32", backend: cpu });

async function saved(kind: "gpt" | "bitgpt") {
  const model = createModel(kind, CFG, { backend: cpu, generator: new Generator(3) });
  const opt = new AdamW(model, { lr: 1e-2 });
  tidy(() => {
    model.forward(IDS(), IDS()).loss!.backward();
    opt.step();
    opt.zeroGrad();
  });
  const bytes = await saveCheckpoint(model, {
    optimizer: opt,
    iteration: 7,
    bestValLoss: 2.5,
    trainConfig: { ...DEFAULT_TRAIN },
    rng: { train: { seed: 1, offset: 9 } },
  });
  model.dispose();
  return { bytes, ...readSafetensors(bytes) };
}

const GPT = await saved("gpt");
const BIT = await saved("bitgpt");

function rejects(bytes: Uint8Array, pattern: RegExp, o: LoadCheckpointOptions = {}): void {
  throws(() => loadCheckpoint(bytes, { backend: cpu, ...o }), (e: unknown) => {
    ok(e instanceof CheckpointError, `expected CheckpointError, got ${(e as Error)?.stack}`);
    ok(pattern.test(e.message), `${e.message} !~ ${pattern}`);
    ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

/** A copy of a saved file's tensors with `name`'s element `i` set to `v`. */
function withValue(src: typeof GPT, name: string, i: number, v: number) {
  const tensors: Record<string, NamedArray> = { ...src.tensors };
  const data = Float32Array.from(tensors[name].data);
  data[i] = v;
  tensors[name] = { ...tensors[name], data };
  return tensors;
}

Deno.test("non-finite weights and moments are refused, naming the tensor; allowNonFinite loads weights", () => {
  const cases: [typeof GPT, string][] = [
    [GPT, "transformer.wte.weight"],
    [GPT, "transformer.wpe.weight"],
    [GPT, "transformer.ln_f.weight"],
    [GPT, "transformer.h.1.mlp.c_fc.bias"],
    [BIT, "lm_head.bias"],
    [BIT, "transformer.h.0.attn.q_proj.weight"],
    [BIT, "transformer.h.1.mlp.c_proj.norm.weight"],
  ];
  for (const [src, name] of cases) {
    for (const v of [NaN, Infinity, -Infinity]) {
      const bytes = writeSafetensors(withValue(src, name, 3, v), src.metadata);
      const esc = name.replace(/\./g, "\\.");
      rejects(bytes, new RegExp(`tensor ${esc} holds ${v} at index 3.*allowNonFinite`));
      const ck = loadCheckpoint(bytes, { backend: cpu, allowNonFinite: true });
      ck.model.dispose();
    }
  }
  // Moments are refused whatever the option: they would poison the next step.
  const m = "optimizer.transformer.h.0.ln_1.weight.exp_avg";
  rejects(writeSafetensors(withValue(GPT, m, 0, NaN), GPT.metadata), /holds NaN/, {
    allowNonFinite: true,
  });
  const sq = "optimizer.transformer.h.0.ln_1.weight.exp_avg_sq";
  rejects(writeSafetensors(withValue(GPT, sq, 0, -1), GPT.metadata), /cannot be negative/);
});

Deno.test("configs larger than the file are refused before anything is allocated", () => {
  const cfg = (c: object) =>
    writeSafetensors(GPT.tensors, { ...GPT.metadata, config: JSON.stringify({ ...CFG, ...c }) });
  const t0 = performance.now();
  rejects(cfg({ nLayer: 100_000 }), /the config has 100000 layers but the file holds only \d+/);
  rejects(cfg({ nEmbd: 65536, nHead: 2 }), /do not fit a gpt of this config: .*shape mismatch/);
  rejects(cfg({ vocabSize: 1e9 }), /shape mismatch transformer\.wte\.weight/);
  rejects(
    cfg({ blockSize: 1e9, pos: "rope" }),
    /blockSize 1000000000 asks for rotary tables|unexpected transformer\.wpe/,
  );
  // A nanoGPT-named file: 0-byte tensors can name a huge layer index or a huge width.
  const foreign = (extra: Record<string, NamedArray>) => {
    const t: Record<string, NamedArray> = {};
    for (const [k, v] of Object.entries(GPT.tensors)) if (!k.startsWith("optimizer.")) t[k] = v;
    return writeSafetensors({ ...t, ...extra });
  };
  const empty = (shape: number[]): NamedArray => ({
    dtype: "F32",
    shape,
    data: new Float32Array(0),
  });
  rejects(
    foreign({ "transformer.h.99999999.ln_1.weight": empty([0]) }),
    /the config has 100000000 layers but the file holds only/,
    { config: { nHead: 2 } },
  );
  rejects(foreign({ "transformer.h.1.attn.c_attn.weight": empty([0, 65536]) }), /shape mismatch/, {
    config: { nHead: 2 },
  });
  ok(performance.now() - t0 < 2000, "refused without building the models");
});

Deno.test("a shifted header, a repeated key and a tied weight with two values are refused", () => {
  const n = Number(new DataView(GPT.bytes.buffer).getBigUint64(0, true));
  const shifted = GPT.bytes.slice();
  new DataView(shifted.buffer).setBigUint64(0, BigInt(n - 1), true);
  rejects(shifted, /trailing bytes|not valid JSON/);
  // A repeated metadata key: the JSON text says iteration twice.
  const json = new TextDecoder().decode(GPT.bytes.subarray(8, 8 + n)).trimEnd();
  const twice = json.replace('"iteration":"7"', '"iteration":"7","iteration":"9"');
  ok(twice !== json);
  const enc = new TextEncoder().encode(twice.padEnd(n + 16, " "));
  const dup = new Uint8Array(8 + enc.length + GPT.bytes.length - 8 - n);
  new DataView(dup.buffer).setBigUint64(0, BigInt(enc.length), true);
  dup.set(enc, 8);
  dup.set(GPT.bytes.subarray(8 + n), 8 + enc.length);
  rejects(dup, /header repeats the key 'iteration'/);
  // lm_head.weight stored beside the wte GPT ties it to: equal loads, different is refused.
  const wte = GPT.tensors["transformer.wte.weight"];
  const same = writeSafetensors({ ...GPT.tensors, "lm_head.weight": wte }, GPT.metadata);
  loadCheckpoint(same, { backend: cpu }).model.dispose();
  const other = withValue(GPT, "transformer.wte.weight", 0, 0.5)["transformer.wte.weight"];
  const differs = writeSafetensors({ ...GPT.tensors, "lm_head.weight": other }, GPT.metadata);
  rejects(differs, /lm_head\.weight differs from transformer\.wte\.weight/);
});

Deno.test("metadata of the wrong type or range is refused, naming the field", () => {
  const meta = (m: Record<string, string>) =>
    writeSafetensors(GPT.tensors, { ...GPT.metadata, ...m });
  const json = (key: string, f: (v: Record<string, unknown>) => void) => {
    const v = JSON.parse(GPT.metadata[key]);
    f(v);
    return meta({ [key]: JSON.stringify(v) });
  };
  for (const it of ["abc", "-5", "1e400", "1.5", "", " 7", "99999999999999999"]) {
    rejects(meta({ iteration: it }), /metadata 'iteration' must be a non-negative integer/);
  }
  for (const b of ["NaN", "-1", "abc", "-Infinity", ""]) {
    rejects(meta({ best_val_loss: b }), /metadata 'best_val_loss' must be a loss >= 0/);
  }
  strictEqual(
    loadCheckpoint(meta({ best_val_loss: "Infinity" }), { backend: cpu }).bestValLoss,
    Infinity,
  );
  rejects(
    json("config", (c) => (c.dropout = "0.1")),
    /stored config field 'dropout' must be a number/,
  );
  rejects(json("config", (c) => (c.bias = 1)), /field 'bias' must be a boolean/);
  rejects(json("config", (c) => (c.extra = 1)), /unknown field 'extra'/);
  rejects(json("config", (c) => delete c.pos), /lacks the field 'pos'/);
  rejects(
    json("rng", (r) => ((r.train as { seed: number }).seed = -1)),
    /seed must be a non-negative integer/,
  );
  rejects(json("rng", (r) => ((r.train as { offset: number }).offset = 0.5)), /offset must be/);
  rejects(json("optimizer", (o) => (o.step = -5)), /optimizer' step must be an integer >= 1/);
  rejects(json("optimizer", (o) => (o.step = 0)), /step must be an integer >= 1/);
  rejects(json("optimizer", (o) => (o.betas = [0.9, 1])), /betas must be two numbers in \[0, 1\)/);
  rejects(json("optimizer", (o) => (o.eps = 0)), /eps must be a finite number > 0/);
  rejects(json("optimizer", (o) => (o.lr = "1")), /field 'lr' must be a number/);
  rejects(
    json("train_config", (t) => (t.batchSize = 0)),
    /stored train: batchSize must be a positive/,
  );
  rejects(json("train_config", (t) => (t.decayLr = "yes")), /field 'decayLr' must be a boolean/);
  rejects(meta({ eval_done: "2" }), /eval_done' must be "0" or "1"/);
  rejects(meta({ tied: "{}" }), /metadata 'tied' is \{\}, but a gpt ties/);
  rejects(meta({ format_version: "1e0" }), /format_version '1e0' is not a version number/);
  rejects(meta({ rng: "[1]" }), /metadata 'rng' is not a JSON object/);
  const noOpt = { ...GPT.metadata };
  delete noOpt.optimizer;
  rejects(writeSafetensors(GPT.tensors, noOpt), /optimizer moments but no metadata 'optimizer'/);
  // The untouched file still loads, with every field.
  const ck = loadCheckpoint(GPT.bytes, { backend: cpu });
  deepStrictEqual([ck.iteration, ck.bestValLoss, ck.rng], [7, 2.5, {
    train: { seed: 1, offset: 9 },
  }]);
  ck.model.dispose();
});
