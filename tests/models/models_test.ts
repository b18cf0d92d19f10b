// GPT and BitGPT: parameter names exactly as nanoGPT / the issue list them, init statistics,
// forward shapes and the initial loss, presets, and both models overfitting one small batch on
// the CPU and (when present) the WebGPU backend.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import { BitGPT } from "../../models/bitgpt.ts";
import { ConfigError, type GPTConfig, makeConfig } from "../../models/config.ts";
import { GPT } from "../../models/gpt.ts";
import type { LanguageModel } from "../../models/model.ts";
import { createModel } from "../../models/model.ts";
import { getPreset, PRESET_NAMES } from "../../models/presets.ts";
import { AdamW, clipGradNorm } from "../../nn/optim.ts";
import { cpu, gpu, hasWebGPU, values } from "../util.ts";

const TINY: GPTConfig = makeConfig({ vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8 });

function gptNames(nLayer: number, learned = true): string[] {
  const block = (i: number) =>
    ["ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"].flatMap((m) => [
      `transformer.h.${i}.${m}.weight`,
      `transformer.h.${i}.${m}.bias`,
    ]);
  return [
    "transformer.wte.weight",
    ...(learned ? ["transformer.wpe.weight"] : []),
    ...Array.from({ length: nLayer }, (_, i) => block(i)).flat(),
    "transformer.ln_f.weight",
    "transformer.ln_f.bias",
  ];
}

Deno.test("GPT parameter names are nanoGPT's; lm_head.weight is wte.weight", () => {
  const m = new GPT(TINY, { backend: cpu });
  deepStrictEqual(m.namedParameters().map(([n]) => n), gptNames(2));
  deepStrictEqual(Object.keys(m.stateDict()), [...gptNames(2), "lm_head.weight"]);
  strictEqual(m.stateDict()["lm_head.weight"], m.transformer.wte.weight);
  deepStrictEqual(m.tiedNames(), { "lm_head.weight": "transformer.wte.weight" });
  deepStrictEqual([...m.stateDict()["transformer.h.1.attn.c_attn.weight"].shape], [24, 8]); // [out, in]
  deepStrictEqual([...m.stateDict()["transformer.h.0.mlp.c_fc.weight"].shape], [32, 8]);
  // nanoGPT's get_num_params(): everything once, minus the position embeddings.
  strictEqual(m.countParameters(), m.numParameters() - 8 * 8);
  const noBias = new GPT({ ...TINY, bias: false, pos: "rope" }, { backend: cpu });
  ok(noBias.namedParameters().every(([n]) => !n.endsWith(".bias")));
  ok(!noBias.namedParameters().some(([n]) => n.includes("wpe")));
});

Deno.test("BitGPT parameter names: q/k/v/c_proj and c_fc/c_proj BitLinears with norm.weight", () => {
  const m = new BitGPT(TINY, { backend: cpu });
  const bit = (i: number, mod: string) => [
    `transformer.h.${i}.${mod}.weight`,
    `transformer.h.${i}.${mod}.norm.weight`,
  ];
  const block = (i: number) =>
    ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
      .flatMap((mod) => bit(i, mod));
  deepStrictEqual(m.namedParameters().map(([n]) => n), [
    "transformer.wte.weight",
    "transformer.wpe.weight",
    ...block(0),
    ...block(1),
    "transformer.ln_f.weight",
    "transformer.ln_f.bias",
    "lm_head.weight",
    "lm_head.bias",
  ]);
  deepStrictEqual(m.tiedNames(), {});
  strictEqual(m.bitLinears().length, 12);
  deepStrictEqual([...m.stateDict()["lm_head.bias"].shape], [11]);
});

Deno.test("init: N(0, 0.02), c_proj N(0, 0.02/sqrt(2·nLayer)), biases 0, norms 1", async () => {
  const c = makeConfig({ vocabSize: 64, blockSize: 16, nLayer: 4, nHead: 4, nEmbd: 96 });
  const m = new GPT(c, { backend: cpu, generator: new Generator(3) });
  const sd = m.stateDict();
  const std = async (name: string) => {
    const v = await values(sd[name]);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  };
  for (
    const n of [
      "transformer.wte.weight",
      "transformer.h.2.attn.c_attn.weight",
      "transformer.h.0.mlp.c_fc.weight",
    ]
  ) {
    const s = await std(n);
    ok(Math.abs(s - 0.02) < 0.002, `${n}: std ${s}`);
  }
  for (const n of ["transformer.h.1.attn.c_proj.weight", "transformer.h.3.mlp.c_proj.weight"]) {
    const s = await std(n);
    ok(Math.abs(s - 0.02 / Math.sqrt(8)) < 0.001, `${n}: std ${s}`);
  }
  ok((await values(sd["transformer.h.0.attn.c_attn.bias"])).every((v) => v === 0));
  ok((await values(sd["transformer.h.0.ln_1.weight"])).every((v) => v === 1));
  const b = new BitGPT(c, { backend: cpu, generator: new Generator(3) });
  const s = Math.sqrt(
    (await values(b.stateDict()["transformer.h.0.mlp.c_proj.weight"])).reduce(
      (a, v) => a + v * v,
      0,
    ) / (96 * 384),
  );
  ok(Math.abs(s - 0.02 / Math.sqrt(8)) < 0.001, `bitgpt c_proj std ${s}`);
});

Deno.test("forward: logits [B, T, V], lastOnly [B, 1, V], loss ≈ ln V at init, bad input rejected", async () => {
  for (const kind of ["gpt", "bitgpt"] as const) {
    const m = createModel(kind, TINY, { backend: cpu, generator: new Generator(4) });
    const ids = fromArray(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), [2, 5], {
      dtype: "i32",
      backend: cpu,
    });
    const { logits, loss } = m.forward(ids, ids);
    ok(logits, "logits of 10 tokens are returned");
    deepStrictEqual([...logits.shape], [2, 5, 11]);
    const l = await loss!.item();
    ok(Math.abs(l - Math.log(11)) < 0.3, `${kind}: initial loss ${l}`);
    deepStrictEqual([...m.forward(ids, null, { lastOnly: true }).logits.shape], [2, 1, 11]);
    const long = fromArray(new Int32Array(9), [1, 9], { dtype: "i32", backend: cpu });
    throws(() => m.forward(long), /cannot forward 9 positions .* block size is only 8/);
    throws(
      () => m.forward(fromArray(new Float32Array(2), [1, 2], { backend: cpu })),
      /ids must be i32/,
    );
  }
});

Deno.test("presets construct, including past 1B parameters (config only)", () => {
  for (const name of PRESET_NAMES) ok(getPreset(name).model.nLayer > 0);
  const nano = new GPT(getPreset("nano").model, { backend: cpu });
  const n = nano.numParameters();
  ok(n > 40_000 && n < 60_000, `nano has ${n} parameters`);
  const baby = getPreset("baby").model;
  deepStrictEqual([baby.nLayer, baby.nHead, baby.nEmbd, baby.blockSize], [4, 4, 128, 64]);
  const small = getPreset("small").model;
  deepStrictEqual([small.nLayer, small.nHead, small.nEmbd, small.blockSize], [4, 4, 384, 256]);
  const gpt2 = getPreset("gpt2").model;
  deepStrictEqual([gpt2.nLayer, gpt2.nHead, gpt2.nEmbd, gpt2.blockSize, gpt2.vocabSize], [
    12,
    12,
    768,
    1024,
    50304,
  ]);
  // Parameter counts from the configs (12·C² + 13·C per block, embeddings, ln_f): ≥ 1B.
  for (const name of ["gpt2-xl", "1b"]) {
    const c = getPreset(name).model;
    const perBlock = 12 * c.nEmbd ** 2 + (c.bias ? 13 : 0) * c.nEmbd;
    const total = c.nLayer * perBlock + c.vocabSize * c.nEmbd;
    ok(total > 1e9, `${name}: ${total}`);
  }
  throws(() => getPreset("huge"), ConfigError);
  throws(
    () => makeConfig({ nEmbd: 10, nHead: 3 }),
    /nEmbd \(10\) must be divisible by nHead \(3\)/,
  );
  throws(() => makeConfig({ nLayers: 3 } as never), /unknown key 'nLayers'/);
});

async function overfit(kind: "gpt" | "bitgpt", backend: Backend, steps: number): Promise<number[]> {
  const cfg = getPreset("nano").model;
  const model: LanguageModel = createModel(kind, cfg, { backend, generator: new Generator(1) });
  const [B, T] = [2, 16];
  const seq = new Generator(2).integers(B * (T + 1), cfg.vocabSize);
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    x.set(seq.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    y.set(seq.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
  }
  const ids = fromArray(x, [B, T], { dtype: "i32", backend });
  const tgt = fromArray(y, [B, T], { dtype: "i32", backend });
  const opt = new AdamW(model, { lr: 1e-2, weightDecay: 0 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = tidy(() => {
      const { loss } = model.forward(ids, tgt);
      loss!.backward();
      opt.step({ gradScale: clipGradNorm(model.parameters(), 1, { apply: false }).scale });
      opt.zeroGrad();
      return loss!;
    });
    if (i === 0 || i === steps - 1) losses.push(await loss.item());
    loss.dispose();
  }
  model.dispose();
  opt.dispose();
  return losses;
}

for (const kind of ["gpt", "bitgpt"] as const) {
  Deno.test(`${kind} nano overfits one batch on cpu (100 steps)`, async () => {
    const [first, last] = await overfit(kind, cpu, 100);
    ok(first > 3.5 && last < 0.02, `${kind}: loss ${first} -> ${last}`);
  });
  // llvmpipe runs a nano step in ≈ 0.25 s: 60 steps, where the CPU run is already below 0.01.
  Deno.test({
    name: `${kind} nano overfits one batch on webgpu (60 steps)`,
    ignore: !hasWebGPU,
    fn: async () => {
      const [first, last] = await overfit(kind, await gpu(), 60);
      ok(first > 3.5 && last < 0.05, `${kind}: loss ${first} -> ${last}`);
    },
  });
}
