// Autotuning decisions kept across runs (engine/webgpu/tune_store.ts): a second tuner over the
// same store runs the stored winner at once, compiling and timing nothing; a changed candidate
// retunes; progress is reported; and across two real processes `localStorage` carries them.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import {
  Autotuner,
  type Tunable,
  type TunableLaunch,
  type TuneProgress,
} from "../../engine/webgpu/autotune.ts";
import {
  defaultTuneStore,
  fingerprint,
  TuneMemo,
  type TuneStore,
} from "../../engine/webgpu/tune_store.ts";
import { gpu, hasWebGPU } from "../util.ts";

/** A Storage stand-in over a Map. */
function memoryStore(): TuneStore & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => void items.set(k, v),
  };
}

Deno.test("tune memo: a decision is found only under its own fingerprint and scope", () => {
  const store = memoryStore();
  const memo = new TuneMemo(store, "adapter A");
  memo.set("matmul|x", "fp1", "matmul[reg8x16]");
  strictEqual(memo.get("matmul|x", "fp1"), "matmul[reg8x16]");
  strictEqual(memo.get("matmul|x", "fp2"), null, "candidates changed");
  strictEqual(new TuneMemo(store, "adapter B").get("matmul|x", "fp1"), null, "other adapter");
  for (const k of store.items.keys()) store.items.set(k, "{not json");
  strictEqual(memo.get("matmul|x", "fp1"), null, "a corrupt record is ignored");
  const broken = new TuneMemo({
    getItem: () => {
      throw new Error("SecurityError");
    },
    setItem: () => {
      throw new Error("QuotaExceededError");
    },
  }, "s");
  strictEqual(broken.get("k", "f"), null);
  broken.set("k", "f", "n"); // does not throw
  ok(fingerprint(["ab", "c"]) !== fingerprint(["a", "bc"]));
  strictEqual(fingerprint(["ab", "c"]), fingerprint(["ab", "c"]));
});

Deno.test("tune store: Deno's localStorage is the default store", () => {
  strictEqual(defaultTuneStore(), globalThis.localStorage);
});

/** A kernel that spins `iters` LCG steps per invocation (below llvmpipe's loop cap). */
function spin(iters: number): string {
  return `@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var x = gid.x;
  for (var i = 0u; i < ${iters}u; i++) { x = x * 1664525u + 1013904223u; }
  y[gid.x] = x;
}`;
}

function spinTunable(iters: number[]): Tunable {
  const launch = (i: number) => ({
    source: spin(iters[i]),
    grid: [16, 1, 1] as [number, number, number],
  });
  return {
    key: "spin",
    names: iters.map((n) => `spin${n}`),
    launch,
    trial: () => ({ bindingBytes: [16 * 64 * 4], launch }),
  };
}

Deno.test({
  name: "autotuner with a memo: the next process reuses the winner and compiles nothing to tune",
  ignore: !hasWebGPU,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    const store = memoryStore();
    const compiled: string[] = [];
    const tuner = () =>
      new Autotuner(
        be.device,
        (label, code) => {
          compiled.push(label);
          const module = be.device.createShaderModule({ code, label });
          return be.device.createComputePipeline({
            layout: "auto",
            compute: { module, entryPoint: "main" },
          });
        },
        be.device.features.has("timestamp-query"),
        new TuneMemo(store, "test adapter"),
      );
    const tune = spinTunable([20_000, 40]); // candidate 1 is 500× less work: it wins
    const first = tuner();
    const events: TuneProgress["phase"][] = [];
    first.onProgress = (p) => events.push(p.phase);
    const l: TunableLaunch = { ...tune.launch(0), tune };
    strictEqual(first.select(l), l, "untimed: the default runs");
    await first.settle();
    strictEqual(first.results()[0].chosen, 1);
    deepStrictEqual(events, ["start", "key", "end"]);
    strictEqual(store.items.size, 1);

    compiled.length = 0;
    const second = tuner();
    const restored: TuneProgress[] = [];
    second.onProgress = (p) => restored.push(p);
    strictEqual(second.select(l).source, spin(40), "the stored winner runs at once");
    ok(!second.hasPending);
    strictEqual(second.restored, 1);
    deepStrictEqual(restored, [{ phase: "restored", key: "spin", chosen: "spin40" }]);
    await second.settle();
    deepStrictEqual(compiled, [], "nothing compiled or timed");
    strictEqual(second.results().length, 0);

    // A changed candidate (new WGSL under the same name) changes the fingerprint: retuned.
    const third = tuner();
    const changed = spinTunable([20_000, 41]);
    const l3: TunableLaunch = { ...changed.launch(0), tune: changed };
    strictEqual(third.select(l3), l3);
    ok(third.hasPending);
    strictEqual(third.restored, 0);
    await third.settle();
    strictEqual(third.results().length, 1);
  },
});

const SCRIPT = (root: string) => `
import { matmul, randn, useBackend } from "${root}mod.ts";
const be = await useBackend("webgpu");
const [a, b] = [randn([256, 256]), randn([256, 256])];
await matmul(a, b).data();
console.log(JSON.stringify({ restored: be.tuner.restored, tuned: be.tuning().length }));
`;

Deno.test({
  name: "tuning decisions persist across processes in localStorage",
  ignore: !hasWebGPU,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "bitgpt_tune_" });
    try {
      const script = `${dir}/tune.ts`;
      await Deno.writeTextFile(script, SCRIPT(new URL("../../", import.meta.url).href));
      // A fresh origin: a store no earlier run has written.
      const location = `http://t${crypto.randomUUID().slice(0, 8)}.bitgpt.test/`;
      const run = async () => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-lock", "--allow-read", `--location=${location}`, script],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout);
        strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
        return JSON.parse(text.trim().split("\n").pop()!);
      };
      deepStrictEqual(await run(), { restored: 0, tuned: 1 });
      deepStrictEqual(await run(), { restored: 1, tuned: 0 });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
