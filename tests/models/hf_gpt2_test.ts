// Hugging Face GPT-2 files load exactly: a tiny GPT2LMHeadModel saved by `transformers` itself
// (fixtures/hf_gpt2_tiny, made by tools/hf_gpt2_fixture.py) gives transformers' logits, on the
// CPU and on WebGPU, with its config.json's head count and the tanh GELU; the exact GELU or
// another head count would miss them. Files whose head count cannot be known are refused with
// what to give, unless the shapes allow one reading, or are those of a published GPT-2.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { loadCheckpoint } from "../../models/checkpoint.ts";
import { makeConfig } from "../../models/config.ts";
import { configFromHf, foreignToNanoGpt, headReadings } from "../../models/hf.ts";
import { createModel } from "../../models/model.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { assertClose, cpu, gpu, hasWebGPU } from "../util.ts";

const DIR = new URL("./fixtures/hf_gpt2_tiny/", import.meta.url);
const weights = await Deno.readFile(new URL("model.safetensors", DIR));
const hfJson = JSON.parse(await Deno.readTextFile(new URL("config.json", DIR)));
const ref = readSafetensors(await Deno.readFile(new URL("reference.safetensors", DIR))).tensors;
const [B, T] = ref.ids.shape;

/** The fixture's logits under `config` overrides on `backend`, as a flat array. */
async function logitsOf(
  config: Parameters<typeof configFromHf>[0] | Record<string, unknown>,
  backend = cpu,
): Promise<Float32Array> {
  const ck = loadCheckpoint(weights, { backend, config });
  try {
    const ids = fromArray(ref.ids.data as Int32Array, [B, T], { dtype: "i32", backend });
    return await ck.model.forward(ids).logits.data() as Float32Array;
  } finally {
    ck.model.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("an HF GPT-2 file with its config.json gives transformers' logits (cpu)", async () => {
  const config = configFromHf(hfJson);
  deepStrictEqual(config, { nHead: 2, activation: "gelu_tanh" });
  const ck = loadCheckpoint(weights, { backend: cpu, config });
  strictEqual(ck.source, "hf-gpt2");
  deepStrictEqual(ck.config, {
    vocabSize: 40,
    nEmbd: 16,
    nLayer: 2,
    nHead: 2,
    blockSize: 12,
    dropout: 0,
    bias: true,
    pos: "learned",
    activation: "gelu_tanh",
  });
  ck.model.dispose();
  const got = await logitsOf(config);
  const want64 = ref.logits64.data as Float64Array;
  // Logits reach ±11.7; float32 storage with float64 accumulation lands within ~1e-6 of them.
  assertClose(got, want64, { atol: 1e-5, rtol: 1e-6, msg: "logits vs transformers float64" });
  assertClose(got, ref.logits32.data, { atol: 3e-5, rtol: 1e-5, msg: "vs transformers float32" });
  // What the exact GELU or a wrong head count would have given: far outside that tolerance.
  ok(maxAbsDiff(await logitsOf({ ...config, activation: "gelu" }), want64) > 1e-3);
  for (const nHead of [1, 4]) ok(maxAbsDiff(await logitsOf({ ...config, nHead }), want64) > 1e-2);
});

Deno.test({
  name: "an HF GPT-2 file gives transformers' logits on webgpu",
  ignore: !hasWebGPU,
  fn: async () => {
    const got = await logitsOf(configFromHf(hfJson), await gpu());
    assertClose(got, ref.logits64.data, { atol: 1e-4, rtol: 1e-5, msg: "webgpu vs transformers" });
  },
});

Deno.test("a file whose head count cannot be known is refused, saying what to give", () => {
  throws(
    () => loadCheckpoint(weights, { backend: cpu }),
    (e: Error) =>
      e.message.includes("this Hugging Face GPT-2 file does not record its number of attention") &&
      e.message.includes("width 16 fits 5 (nHead 1, 2, 4, 8, 16); give it: --n-head") &&
      e.message.includes("config.nHead in loadCheckpoint's options") &&
      e.message.includes("config.json has it as n_head"),
  );
  // Without config.json, only the head count is needed: gelu_tanh is the HF layout's default.
  const ck = loadCheckpoint(weights, { backend: cpu, config: { nHead: 2 } });
  strictEqual(ck.config.activation, "gelu_tanh");
  ck.model.dispose();
});

Deno.test("headReadings: every divisor of C, even head sizes with rope", () => {
  deepStrictEqual(headReadings(64, "learned"), [1, 2, 4, 8, 16, 32, 64]);
  deepStrictEqual(headReadings(64, "rope"), [1, 2, 4, 8, 16, 32]);
  deepStrictEqual(headReadings(12, "rope"), [1, 2, 3, 6]);
  deepStrictEqual(headReadings(7, "learned"), [1, 7]);
  deepStrictEqual(headReadings(1, "learned"), [1]);
  deepStrictEqual(headReadings(2, "rope"), [1]);
});

/** A nanoGPT-named state (no metadata) of `shapes`: zeros, only the shapes matter here. */
function shapesOnly(c: { vocab: number; ctx: number; C: number; L: number }) {
  const t = (shape: number[]): NamedArray => ({ dtype: "F32", shape, data: new Float32Array(1) });
  const out: Record<string, NamedArray> = {
    "transformer.wte.weight": t([c.vocab, c.C]),
    "transformer.wpe.weight": t([c.ctx, c.C]),
    "transformer.ln_f.weight": t([c.C]),
  };
  for (let i = 0; i < c.L; i++) out[`transformer.h.${i}.attn.c_attn.weight`] = t([3 * c.C, c.C]);
  return out;
}

Deno.test("a nanoGPT-named file: one reading loads, a published GPT-2's shapes are known", async () => {
  // Width 1: one head is the only reading; the model loads and computes without nHead.
  const model = createModel(
    "gpt",
    makeConfig({ vocabSize: 5, blockSize: 4, nLayer: 1, nEmbd: 1, nHead: 1 }),
    {
      backend: cpu,
      generator: new Generator(3),
    },
  );
  const tensors: Record<string, NamedArray> = {};
  for (const [n, p] of Object.entries(model.stateDict())) {
    tensors[n] = { dtype: "F32", shape: [...p.shape], data: await p.data() as Float32Array };
  }
  const ck = loadCheckpoint(writeSafetensors(tensors), { backend: cpu });
  strictEqual(ck.source, "nanogpt");
  strictEqual(ck.config.nHead, 1);
  strictEqual(ck.config.activation, undefined); // nanoGPT: the exact GELU, GPT's own
  ck.model.dispose();
  model.dispose();
  // gpt2 (124M) and gpt2-xl by their shapes; one layer fewer is no published model: refused.
  strictEqual(
    foreignToNanoGpt(shapesOnly({ vocab: 50257, ctx: 1024, C: 768, L: 12 }), {})
      .config.nHead,
    12,
  );
  strictEqual(
    foreignToNanoGpt(shapesOnly({ vocab: 50257, ctx: 1024, C: 1600, L: 48 }), {})
      .config.nHead,
    25,
  );
  throws(
    () => foreignToNanoGpt(shapesOnly({ vocab: 50257, ctx: 1024, C: 768, L: 11 }), {}),
    /this nanoGPT-named file does not record .* width 768 fits 18 \(nHead 1, 2, 3, 4, 6, 8, …, 256, 384, 768\)/,
  );
});

Deno.test("configFromHf refuses settings the model cannot compute", () => {
  const base = { model_type: "gpt2", n_head: 2, n_embd: 16 };
  deepStrictEqual(configFromHf({ ...base, activation_function: "gelu" }), {
    nHead: 2,
    activation: "gelu",
  });
  deepStrictEqual(configFromHf({ ...base, activation_function: "relu" }).activation, "relu");
  deepStrictEqual(
    configFromHf({ ...base, activation_function: "gelu_fast" }).activation,
    "gelu_tanh",
  );
  throws(
    () => configFromHf({ ...base, activation_function: "silu" }),
    /activation_function "silu"/,
  );
  throws(
    () => configFromHf({ ...base, layer_norm_epsilon: 1e-6 }),
    /layer_norm_epsilon is 0.000001/,
  );
  throws(() => configFromHf({ ...base, scale_attn_by_inverse_layer_idx: true }), /inverse_layer/);
  throws(() => configFromHf({ ...base, n_inner: 32 }), /n_inner is 32/);
  throws(() => configFromHf({ ...base, model_type: "llama" }), /model_type is "llama"/);
  throws(() => configFromHf({ model_type: "gpt2" }), /n_head is undefined/);
});
