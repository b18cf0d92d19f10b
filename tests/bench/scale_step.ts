// One forward and backward step of a large preset (gpt2-xl, 1b) on the WebGPU backend at a small
// batch, to show that a ≥ 1B model builds and runs where memory allows: tensors over the binding
// limit are bound in pieces by the engine. Prints build, forward and backward times, the loss,
// the buffer pool's peak live bytes and the process RSS, then frees everything. Heavy on
// llvmpipe (GPU memory is host memory): gpt2-xl needs ≈ 13 GB and minutes of CPU.
// Run: deno run -A tests/bench/scale_step.ts --preset gpt2-xl [--kind gpt] [--batch 1] [--time 64]

import { fromArray } from "../../engine/creation.ts";
import { webgpuBackend } from "../../engine/device.ts";
import { Generator } from "../../engine/random.ts";
import type { ModelKind } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { parameterCount } from "../../models/params.ts";
import { getPreset } from "../../models/presets.ts";
import { Parameter } from "../../nn/module.ts";
import type { Tensor } from "../../engine/tensor.ts";

const FLAGS = ["preset", "kind", "batch", "time", "seed", "autotune"] as const;
type Flag = (typeof FLAGS)[number];

function parseFlags(args: string[]): Record<Flag, string> {
  const out: Record<Flag, string> = {
    preset: "gpt2-xl",
    kind: "gpt",
    batch: "1",
    time: "64",
    seed: "1337",
    autotune: "off",
  };
  for (let i = 0; i < args.length; i += 2) {
    const k = args[i].replace(/^--/, "") as Flag;
    if (!FLAGS.includes(k) || args[i + 1] === undefined) {
      throw new Error(`scale_step: unknown or valueless flag '${args[i]}' (flags: ${FLAGS})`);
    }
    out[k] = args[i + 1];
  }
  return out;
}

const GB = 1e9;
const gb = (b: number) => `${(b / GB).toFixed(2)} GB`;
const rss = () => gb(Deno.memoryUsage().rss);
const peaks = () => {
  const s = be.stats();
  return `pool peak live ${gb(s.peakLiveBytes)}, peak held (live + free lists) ${
    gb(s.peakHeldBytes)
  }`;
};
const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

const f = parseFlags(Deno.args);
const kind = f.kind as ModelKind;
const cfg = getPreset(f.preset).model;
const [B, T] = [Number(f.batch), Number(f.time)];
const be = await webgpuBackend();
be.setAutotune(f.autotune === "on"); // off: no compile-and-time of every matmul variant
const n = parameterCount(kind, cfg);
console.log(`device: ${be.describe()}`);
console.log(
  `${kind} ${f.preset}: nLayer ${cfg.nLayer}, nEmbd ${cfg.nEmbd}, vocab ${cfg.vocabSize}, ` +
    `pos ${cfg.pos}; ${(n / 1e6).toFixed(1)}M parameters (${gb(4 * n)} f32, ${
      gb(8 * n)
    } with gradients); B ${B}, T ${T}`,
);

let t0 = performance.now();
const model = createModel(kind, cfg, { backend: be, generator: new Generator(Number(f.seed)) });
await be.sync();
const over = model.namedParameters().filter(([, p]) => p.size * 4 > be.maxBindingBytes)
  .map(([name, p]) => `${name} [${p.shape.join(", ")}]`);
console.log(
  `build: ${seconds(t0)}; over one binding: ${over.join(", ") || "none"}; ${peaks()}; ` +
    `rss ${rss()}`,
);

const g = new Generator(7);
const ids = (a: Int32Array) => fromArray(a, [B, T], { dtype: "i32", backend: be });
const [x, y] = [ids(g.integers(B * T, cfg.vocabSize)), ids(g.integers(B * T, cfg.vocabSize))];
t0 = performance.now();
const { logits, loss } = model.forward(x, y);
const lossValue = await loss!.item();
console.log(
  `forward: ${seconds(t0)}; loss ${lossValue.toFixed(4)} (ln V = ${
    Math.log(cfg.vocabSize).toFixed(4)
  }); ${peaks()}; rss ${rss()}`,
);

// The step's intermediates, to free after backward (no tidy: reads in between are async).
const graph = new Set<Tensor>();
const stack: Tensor[] = [loss!];
while (stack.length) {
  const t = stack.pop()!;
  if (graph.has(t)) continue;
  graph.add(t);
  for (const i of t.node?.inputs ?? []) stack.push(i);
}
t0 = performance.now();
loss!.backward();
await be.sync();
const withGrad = model.parameters().filter((p) => p.grad).length;
let gradSq = 0;
for (const p of model.parameters().slice(0, 3)) {
  for (const v of await p.grad!.data()) gradSq += v * v;
}
console.log(
  `backward: ${seconds(t0)}; ${withGrad}/${model.parameters().length} parameters have ` +
    `gradients (first three: |g|² ${gradSq.toExponential(3)}); ${peaks()}; rss ${rss()}`,
);

for (const t of [...graph, x, y]) if (!(t instanceof Parameter)) t.dispose();
logits?.dispose(); // null when the loss was computed over row blocks
model.dispose();
be.trim();
const s = be.stats();
console.log(`after dispose: live ${gb(s.liveBytes)} in ${s.liveBuffers} buffers; rss ${rss()}`);
