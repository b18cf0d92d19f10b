// The decode benchmark: tokens per second of a baby BitGPT on its packed ternary weights (the
// path `deno task generate` takes), of the same model on its fake-quantised float weights, and of
// a baby GPT, per backend present (`--preset baby`: 4 layers, 4 heads, 128 wide, block 64, the
// char vocabulary of 65). Each sample is what `generate` does: a 6-token prompt, then `--tokens`
// new tokens one at a time with the KV cache (past the block of 64 the window slides and each
// token recomputes it, as in generation), sampled on the device (temperature 1, top-k 200) and
// read back 16 at a time. Weights are the seeded initialisation: a token's cost does not depend
// on their values. Every case is warmed up first (compiles, tuning, the packing), then the cases
// are timed interleaved, ROUNDS times, so load from other processes hits all alike; the table
// gives the median tokens/s over rounds, the range, and ms per token. The packed and float paths
// of BitGPT must give the same tokens on one backend (checked every round).
// Run: deno run -A tests/bench/decode.ts [--tokens 200] [--rounds 3] [--backends wasm,webgpu,cpu]
//   [--threads 0]   (deno task bench runs it last)

import { hasWebGPU, useBackend } from "../../engine/device.ts";
import { BitGPT } from "../../models/bitgpt.ts";
import { generate } from "../../models/generate.ts";
import type { GPT } from "../../models/gpt.ts";
import { createModel } from "../../models/model.ts";
import { getPreset } from "../../models/presets.ts";
import { Generator } from "../../engine/random.ts";
import type { BackendChoice } from "../../engine/device.ts";

const PROMPT = [30, 27, 25, 17, 27, 10]; // "ROMEO:" in the char vocabulary

interface Flags {
  tokens: number;
  rounds: number;
  backends: string[];
  threads: number;
}

function parseFlags(args: string[]): Flags {
  const f: Flags = { tokens: 200, rounds: 3, backends: ["wasm", "webgpu", "cpu"], threads: 0 };
  for (let i = 0; i < args.length; i += 2) {
    const [k, v] = [args[i].replace(/^--/, ""), args[i + 1]];
    if (v === undefined) throw new Error(`decode: --${k} needs a value`);
    if (k === "tokens" || k === "rounds" || k === "threads") f[k] = Number(v);
    else if (k === "backends") f.backends = v.split(",");
    else throw new Error(`decode: unknown flag --${k}`);
  }
  if (!(f.tokens >= 16)) throw new Error(`decode: --tokens must be at least 16`);
  return f;
}

/** One timed case: a model on a backend, and the tokens/s of each round. */
interface Case {
  backend: string;
  label: string;
  model: GPT;
  rates: number[];
  last: number[];
}

async function sample(model: GPT, tokens: number): Promise<{ ids: number[]; secs: number }> {
  const t0 = performance.now();
  const [ids] = await generate(model, PROMPT, {
    maxNewTokens: tokens,
    temperature: 1,
    topK: 200,
    generator: new Generator(7),
  });
  return { ids, secs: (performance.now() - t0) / 1000 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const f = parseFlags(Deno.args);
  const gpu = await hasWebGPU();
  const cases: Case[] = [];
  for (const name of f.backends) {
    if (name === "webgpu" && !gpu) {
      console.error("decode: no WebGPU adapter, skipping webgpu");
      continue;
    }
    const backend = await useBackend(name as BackendChoice, {
      threads: f.threads || undefined,
      quiet: true,
    });
    const config = getPreset("baby").model;
    const bit = createModel("bitgpt", config, { backend, generator: new Generator(1) }) as BitGPT;
    const packed = createModel("bitgpt", config, {
      backend,
      generator: new Generator(1),
    }) as BitGPT;
    await packed.quantize();
    const gpt = createModel("gpt", config, { backend, generator: new Generator(1) });
    for (
      const [label, model] of [["bitgpt packed", packed], ["bitgpt float", bit], [
        "gpt",
        gpt,
      ]] as const
    ) {
      await sample(model, 24); // warm-up: compiles, tuning, first allocations
      cases.push({ backend: name, label, model, rates: [], last: [] });
    }
  }
  for (let r = 0; r < f.rounds; r++) {
    for (const c of cases) {
      const { ids, secs } = await sample(c.model, f.tokens);
      c.rates.push(f.tokens / secs);
      c.last = ids;
    }
    for (const name of f.backends) {
      const [p, q] = ["bitgpt packed", "bitgpt float"].map((l) =>
        cases.find((c) => c.backend === name && c.label === l)
      );
      if (p && q && p.last.join() !== q.last.join()) {
        throw new Error(`decode: packed and float BitGPT gave different tokens on ${name}`);
      }
    }
    console.error(`decode: round ${r + 1} of ${f.rounds} done`);
  }
  console.log(
    `\ndecode, baby models (4 × 128, block 64, char vocab), ${f.tokens} new tokens after a ` +
      `6-token prompt, ${f.rounds} interleaved rounds:\n`,
  );
  console.log("| backend | model | tokens/s | range | ms/token |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const c of cases) {
    const m = median(c.rates);
    const lo = Math.min(...c.rates), hi = Math.max(...c.rates);
    console.log(
      `| ${c.backend} | ${c.label} | ${m.toFixed(1)} | ${lo.toFixed(1)}–${hi.toFixed(1)} | ` +
        `${(1000 / m).toFixed(2)} |`,
    );
  }
  console.log("\nbitgpt packed and float gave the same tokens on every backend, every round.");
}

if (import.meta.main) await main();
