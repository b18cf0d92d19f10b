// Hostile checkpoint files for the fuzz suite (issue 14), generated from real ones: byte flips,
// truncations, header-size and header-text edits, hostile metadata, huge configs, non-finite
// values, repeated keys, tied-weight conflicts, renamed, removed, reshaped or shifted tensors.
// Each case says whether the file is invalid by construction ("fail": it must be refused) or may
// still be a valid file ("either": it may load, and then must load what the file says).

import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import { fromArray } from "../../engine/creation.ts";
import { cpuBackend } from "../../engine/device.ts";
import { CharTokenizer } from "../../data/tokenizer.ts";
import { saveCheckpoint } from "../../models/checkpoint.ts";
import { DEFAULT_TRAIN, makeConfig, type ModelKind } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { AdamW } from "../../nn/optim.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";

/** A real file the cases start from. */
export interface Base {
  /** "gpt" or "bitgpt" (ours, with optimizer and metadata) or "nanogpt" (foreign, weights only). */
  name: "gpt" | "bitgpt" | "nanogpt";
  bytes: Uint8Array;
  tensors: Record<string, NamedArray>;
  metadata: Record<string, string>;
}

/** One hostile file. */
export interface FuzzCase {
  /** The mutation, e.g. "truncate" or "meta:iteration". */
  kind: string;
  base: Base;
  bytes: Uint8Array;
  /** "fail": invalid by construction; "either": may be valid. */
  expect: "fail" | "either";
  /** Load with allowNonFinite. */
  allowNonFinite?: boolean;
}

/** The characters of the bases' vocabulary (16: a small char tokenizer). */
export const CHARS = [..."\n abcdefghilmnor"];

async function ours(kind: ModelKind): Promise<Base> {
  const be = cpuBackend();
  const config = makeConfig({ vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 16 });
  const model = createModel(kind, config, { backend: be, generator: new Generator(11) });
  const opt = new AdamW(model, { lr: 1e-2 });
  const ids = fromArray(Int32Array.from({ length: 32 }, (_, i) => (i * 7) % 16), [2, 16], {
    dtype: "i32",
    backend: be,
  });
  tidy(() => {
    model.forward(ids, ids).loss!.backward();
    opt.step();
    opt.zeroGrad();
  });
  const bytes = await saveCheckpoint(model, {
    optimizer: opt,
    iteration: 7,
    bestValLoss: 2.25,
    trainConfig: { ...DEFAULT_TRAIN, maxIters: 10, evalInterval: 5, evalIters: 1, batchSize: 2 },
    rng: { train: { seed: 1, offset: 40 }, val: { seed: 2, offset: 8 } },
    tokenizer: JSON.stringify(new CharTokenizer(CHARS).toJSON()),
    extra: { eval_done: "1" },
  });
  model.dispose();
  ids.dispose();
  return { name: kind, bytes, ...readSafetensors(bytes) };
}

async function nanogpt(): Promise<Base> {
  const config = makeConfig({ vocabSize: 16, blockSize: 16, nLayer: 1, nHead: 1, nEmbd: 64 });
  const model = createModel("gpt", config, { backend: cpuBackend(), generator: new Generator(3) });
  const tensors: Record<string, NamedArray> = {};
  for (const [n, p] of model.namedParameters()) {
    tensors[n] = { dtype: "F32", shape: [...p.shape], data: (await p.data()) as Float32Array };
  }
  model.dispose();
  const bytes = writeSafetensors(tensors);
  return { name: "nanogpt", bytes, ...readSafetensors(bytes) };
}

/** The three base files. */
export async function makeBases(): Promise<Base[]> {
  return [await ours("gpt"), await ours("bitgpt"), await nanogpt()];
}

/** The header text, its padded length and the data section of a file. */
function split(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    n,
    text: new TextDecoder().decode(bytes.subarray(8, 8 + n)),
    data: bytes.subarray(8 + n),
  };
}

/** A file from header text and data (padded with spaces to 8 bytes, like the writer). */
function assemble(text: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(text);
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + padded + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  out.set(data, 8 + padded);
  return out;
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, n: number) => Math.floor(r() * n);

function rewrite(b: Base, tensors: Record<string, NamedArray>, meta?: Record<string, string>) {
  return writeSafetensors(tensors, meta ?? (b.name === "nanogpt" ? undefined : b.metadata));
}

const weightNames = (b: Base) => Object.keys(b.tensors).filter((k) => !k.startsWith("optimizer."));

// Hostile values per metadata key: each is invalid for the key (the JSON ones are edits).
const BAD_META: Record<string, (string | ((v: Record<string, unknown>) => void))[]> = {
  iteration: [
    "abc",
    "-5",
    "1e400",
    "1.5",
    "",
    " 7",
    "0x10",
    "NaN",
    "Infinity",
    "99999999999999999",
  ],
  best_val_loss: ["NaN", "-1", "abc", "-Infinity", "", "1e400", "0x1"],
  format_version: ["0", "2", "-1", "x", "1.0", "", " 1", "1e0"],
  model: ["llama", "", "GPT", "gpt ", "__proto__"],
  eval_done: ["2", "yes", "", "true"],
  format: ["bitgpt-checkpoint2", "BITGPT", "pt", ""],
  config: [
    "{",
    "[]",
    "null",
    "{}",
    "1",
    (c) => (c.nLayer = 100000),
    (c) => (c.nLayer = 1e300),
    (c) => ((c.nEmbd = 65536), (c.nHead = 1)),
    (c) => (c.vocabSize = 1e9),
    (c) => (c.blockSize = 1e9),
    (c) => ((c.blockSize = 1e9), (c.pos = "rope")),
    (c) => (c.dropout = "0.1"),
    (c) => (c.dropout = 1.5),
    (c) => (c.bias = "true"),
    (c) => (c.pos = "rotary"),
    (c) => (c.nHead = 3),
    (c) => (c.nHead = 0),
    (c) => (c.nLayer = 1.5),
    (c) => (c.nLayer = -1),
    (c) => (c.extra = 1),
    (c) => delete c.nEmbd,
    (c) => (c.nLayer = 3),
    (c) => (c.vocabSize = 17),
  ],
  optimizer: [
    "{",
    "[]",
    "null",
    (o) => (o.step = -5),
    (o) => (o.step = 0),
    (o) => (o.step = 1.5),
    (o) => (o.step = "3"),
    (o) => (o.lr = -1),
    (o) => (o.lr = null),
    (o) => (o.betas = [0.9]),
    (o) => (o.betas = [1, 0.9]),
    (o) => (o.eps = 0),
    (o) => (o.eps = -1),
    (o) => (o.weightDecay = -1),
    (o) => (o.extra = true),
    (o) => delete o.eps,
  ],
  rng: [
    "[]",
    "{",
    "1",
    (r) => (r.train = { seed: -1, offset: 0 }),
    (r) => (r.train = { seed: 1.5, offset: 0 }),
    (r) => (r.train = { seed: 1, offset: -1 }),
    (r) => (r.train = { seed: 1 }),
    (r) => (r.train = "x"),
    (r) => (r.train = { seed: 2 ** 60, offset: 0 }),
    (r) => (r.val = { seed: 1, offset: 0, extra: 1 }),
  ],
  train_config: [
    "{",
    "[]",
    (t) => (t.batchSize = 0),
    (t) => (t.maxIters = -1),
    (t) => (t.learningRate = -1),
    (t) => (t.beta1 = 1),
    (t) => (t.schedule = "x"),
    (t) => (t.decayLr = "yes"),
    (t) => (t.extra = 1),
    (t) => (t.seed = "1"),
    (t) => (t.minLr = 1),
    (t) => (t.seed = -3),
  ],
  tied: ["{}", "[]", '{"lm_head.weight":"transformer.wpe.weight"}', "{"],
};

/** A hostile metadata value (our bases only): always invalid. */
function metaCase(r: Rand, b: Base): FuzzCase {
  const key = pick(r, Object.keys(BAD_META));
  let bad = pick(r, BAD_META[key]);
  if (key === "model" && r() < 0.3) bad = b.name === "gpt" ? "bitgpt" : "gpt";
  if (key === "tied" && b.name === "bitgpt" && bad === "{}") {
    bad = '{"lm_head.weight":"transformer.wte.weight"}'; // "{}" is BitGPT's own, valid
  }
  let value: string;
  if (typeof bad === "string") value = bad;
  else {
    const v = JSON.parse(b.metadata[key]);
    bad(v);
    value = JSON.stringify(v);
  }
  return {
    kind: `meta:${key}`,
    base: b,
    expect: "fail",
    bytes: rewrite(b, b.tensors, { ...b.metadata, [key]: value }),
  };
}

/** A NaN or ±Infinity in a weight (or a moment). */
function nonFiniteCase(r: Rand, b: Base): FuzzCase {
  const moment = b.name !== "nanogpt" && r() < 0.2;
  const names = Object.keys(b.tensors).filter((k) => k.startsWith("optimizer.") === moment);
  const name = pick(r, names);
  const data = Float32Array.from(b.tensors[name].data);
  data[int(r, data.length)] = pick(r, [NaN, Infinity, -Infinity]);
  const allow = !moment && r() < 0.3;
  const bytes = rewrite(b, { ...b.tensors, [name]: { ...b.tensors[name], data } });
  return {
    kind: moment ? "nonfinite-moment" : "nonfinite",
    base: b,
    bytes,
    expect: allow ? "either" : "fail",
    allowNonFinite: allow,
  };
}

/** Structural edits to the tensor table. */
function tensorCase(r: Rand, b: Base): FuzzCase {
  const names = weightNames(b);
  const name = pick(r, names);
  const t = { ...b.tensors };
  const op = pick(r, [
    "remove",
    "rename",
    "extra",
    "huge-layer",
    "reshape",
    "swap",
    "bf16",
    "tied",
    "neg-moment",
  ]);
  const empty = (shape: number[]): NamedArray => ({
    dtype: "F32",
    shape,
    data: new Float32Array(0),
  });
  let expect: "fail" | "either" = "fail";
  if (op === "remove") delete t[name];
  else if (op === "rename") {
    t[name + pick(r, ["x", ".0", "_"])] = t[name];
    delete t[name];
  } else if (op === "extra") t[`transformer.h.${int(r, 4)}.extra.weight`] = t[name];
  else if (op === "huge-layer") {
    t[`transformer.h.${pick(r, [99999999, 100000, 2 ** 40])}.ln_1.weight`] = empty([0]);
  } else if (op === "reshape") {
    const s = t[name].shape;
    const shape = s.length === 2 ? [s[1], s[0]] : [1, ...s];
    if (s.length === 2 && s[0] === s[1]) expect = "either";
    t[name] = { ...t[name], shape };
  } else if (op === "swap") {
    // Two tensors of one shape trade their data: a valid file with other weights.
    const same = names.filter((n) => n !== name && `${t[n].shape}` === `${t[name].shape}`);
    if (same.length) [t[name], t[same[0]]] = [t[same[0]], t[name]];
    expect = "either";
  } else if (op === "bf16") {
    const f = Float32Array.from(t[name].data);
    const half = new Uint16Array(new Uint32Array(f.buffer).map((w) => w >>> 16));
    // written as U8 bytes, then relabelled BF16 in the header below
    return relabel(b, t, name, new Uint8Array(half.buffer), "BF16");
  } else if (op === "tied" && b.name !== "bitgpt") {
    const wte = t["transformer.wte.weight"];
    const differ = r() < 0.7;
    const data = Float32Array.from(wte.data);
    if (differ) data[int(r, data.length)] += 0.5;
    t["lm_head.weight"] = { ...wte, data };
    expect = differ ? "fail" : "either";
  } else if (op === "neg-moment" && b.name !== "nanogpt") {
    const sq = pick(r, Object.keys(t).filter((k) => k.endsWith(".exp_avg_sq")));
    const data = Float32Array.from(t[sq].data);
    data[int(r, data.length)] = -1e-3;
    t[sq] = { ...t[sq], data };
  } else delete t[name];
  return { kind: `tensor:${op}`, base: b, bytes: rewrite(b, t), expect };
}

/** `name`'s data replaced by `raw` bytes declared as `dtype` (header edited in text). */
function relabel(
  b: Base,
  t: Record<string, NamedArray>,
  name: string,
  raw: Uint8Array,
  dtype: string,
): FuzzCase {
  const shape = t[name].shape;
  const file = rewrite(b, { ...t, [name]: { dtype: "U8", shape: [raw.length], data: raw } });
  const { text, data } = split(file);
  const header = JSON.parse(text);
  header[name] = { ...header[name], dtype, shape };
  return {
    kind: "tensor:bf16",
    base: b,
    bytes: assemble(JSON.stringify(header), data),
    expect: "either",
  };
}

/** Edits of the raw bytes and the header text. */
function byteCase(r: Rand, b: Base): FuzzCase {
  const { n, text, data } = split(b.bytes);
  const op = pick(r, [
    "flip",
    "flip-header",
    "truncate",
    "append",
    "size",
    "digit",
    "dup-key",
    "gap",
    "shift",
    "garbage",
  ]);
  const out = (bytes: Uint8Array, expect: "fail" | "either"): FuzzCase => ({
    kind: `bytes:${op}`,
    base: b,
    bytes,
    expect,
  });
  if (op === "flip" || op === "flip-header") {
    const f = b.bytes.slice();
    const span = op === "flip" ? f.length : 8 + n;
    for (let k = 1 + int(r, 4); k > 0; k--) f[int(r, span)] ^= 1 << int(r, 8);
    return out(f, "either");
  }
  if (op === "truncate") return out(b.bytes.slice(0, int(r, b.bytes.length)), "fail");
  if (op === "append") {
    const f = new Uint8Array(b.bytes.length + 1 + int(r, 16));
    f.set(b.bytes);
    return out(f, "fail");
  }
  if (op === "size") {
    const f = b.bytes.slice();
    const delta = pick(r, [-1, 1, -7, 8, -8, 16, 2 ** 40, -n]);
    new DataView(f.buffer).setBigUint64(0, BigInt(Math.max(0, n + delta)), true);
    return out(f, "fail");
  }
  if (op === "digit") {
    const f = b.bytes.slice();
    const digits = [...f.subarray(8, 8 + n).keys()].filter((i) =>
      f[8 + i] >= 0x30 && f[8 + i] <= 0x39
    );
    f[8 + pick(r, digits)] = 0x30 + int(r, 10);
    return out(f, "either");
  }
  if (op === "dup-key") {
    // Repeat one key of the top level or of the metadata, with the same or another value.
    const header = JSON.parse(text);
    const keys = Object.keys(header);
    const key = pick(r, keys);
    const entry = JSON.stringify(header[key]);
    const edited = text.trimEnd().replace(/\}$/, `,${JSON.stringify(key)}:${entry}}`);
    return out(assemble(edited, data), "fail");
  }
  if (op === "gap" || op === "shift") {
    // Move every tensor after a point by k bytes (a gap), or one tensor's range (an overlap).
    const header = JSON.parse(text);
    const names = Object.keys(header).filter((k) => k !== "__metadata__");
    const at = header[pick(r, names)].data_offsets[0];
    const k = 4 * (1 + int(r, 4));
    for (const name of names) {
      const [s, e] = header[name].data_offsets;
      if (op === "gap" && s >= at) header[name].data_offsets = [s + k, e + k];
    }
    if (op === "shift") {
      const name = pick(r, names);
      const [s, e] = header[name].data_offsets;
      header[name].data_offsets = s >= k ? [s - k, e - k] : [s + k, e + k];
    }
    const grown = new Uint8Array(data.length + (op === "gap" ? k : 0));
    grown.set(data.subarray(0, at));
    grown.set(data.subarray(at), op === "gap" ? at + k : at);
    return out(assemble(JSON.stringify(header), grown), "fail");
  }
  const g = new Uint8Array(int(r, 200));
  for (let i = 0; i < g.length; i++) g[i] = int(r, 256);
  if (g.length >= 8 && r() < 0.5) {
    new DataView(g.buffer).setBigUint64(0, BigInt(g.length - 8), true);
  }
  return out(g, "fail");
}

/** `count` cases, seeded: a deterministic mix over the bases and mutation families. */
export function makeCases(bases: Base[], count: number, seed: number): FuzzCase[] {
  let s = seed >>> 0 || 1;
  const r: Rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const cases: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const b = bases[i % bases.length];
    const family = i % 7;
    if (family <= 2) cases.push(byteCase(r, b));
    else if (family === 3 && b.name !== "nanogpt") cases.push(metaCase(r, b));
    else if (family === 4) cases.push(nonFiniteCase(r, b));
    else cases.push(tensorCase(r, b));
  }
  return cases;
}
