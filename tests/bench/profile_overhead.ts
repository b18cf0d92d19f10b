// What the profiler costs. Off, the engine tests one binding per op and per launch (and per
// dispatch on WebGPU): this measures it against the engine as it was before the profiler existed
// (`--base`, default d6c7774, the last commit without it, extracted with `git archive`), and the
// cost of profiling on. The engines are loaded into one process (separate module graphs, each
// with its own backends) and their runs alternate block by block in a shuffled order, so all see
// the same machine load and clock; each block's time is compared with the base's block of the
// same round. A second copy of the base is a control (A/A): its difference from the base is what
// two identical engines differ by here, the floor under which nothing can be resolved. Workloads:
//   launch    `neg` of 16 floats on the CPU backend, blocks of 5,000: the per-op path (apply,
//             launch, the CPU kernel)
//   nano      a nano GPT training step on the CPU (B 4, T 32: ~270 small launches)
//   dispatch  `neg` of 64 floats on WebGPU, blocks of 500, recorded and submitted but not waited
//             for, when there is an adapter: the backend's per-dispatch path
// Prints per workload each arm's median and the median ratio to the base with a bootstrap 95%
// interval (blocks resampled), over `--processes` processes (default 3).
// Run: deno run -A tests/bench/profile_overhead.ts [--base COMMIT] [--processes 3] [--blocks 60]

import { parseArgs } from "node:util";

type Arm = "base" | "same" | "off" | "on";
const ARMS: Arm[] = ["base", "same", "off", "on"];
type Samples = Record<string, Record<Arm, number[]>>;

// deno-lint-ignore no-explicit-any
type Engine = { m: any; prof: any | null };

async function load(root: string, withProfiler: boolean): Promise<Engine> {
  const m = await import(`file://${root}/mod.ts`);
  const prof = withProfiler ? await import(`file://${root}/engine/profile.ts`) : null;
  return { m, prof };
}

/** Run `block` once per arm, in a fresh random order, `blocks` times; seconds per call. */
async function alternate(
  arms: Record<Arm, () => Promise<number> | number>,
  blocks: number,
): Promise<Record<Arm, number[]>> {
  const out: Record<Arm, number[]> = { base: [], same: [], off: [], on: [] };
  for (let b = 0; b < blocks; b++) {
    const order = [...ARMS].sort(() => Math.random() - 0.5);
    for (const arm of order) out[arm].push(await arms[arm]());
  }
  return out;
}

/** The workloads in one process: base and head engines side by side. */
async function pairs(baseRoots: string[], headRoot: string, blocks: number): Promise<Samples> {
  const base = await load(baseRoots[0], false);
  const same = await load(baseRoots[1], false); // the base again: the control (A/A)
  const head = await load(headRoot, true);
  const out: Samples = {};
  const timed = (e: Engine, on: boolean, fn: () => void | Promise<void>) => async () => {
    if (on) e.prof.startProfile();
    const t0 = performance.now();
    await fn();
    const ms = performance.now() - t0;
    if (on) await e.prof.stopProfile();
    return ms;
  };
  // launch: neg of 16 floats on the CPU.
  const neg = (e: Engine) => {
    const x = e.m.tensor(Array.from({ length: 16 }, (_, i) => i), [16]);
    return () => {
      for (let i = 0; i < 5000; i++) e.m.neg(x).dispose();
    };
  };
  for (const e of [base, same, head]) await e.m.useBackend("cpu");
  const [nb, ns, nh] = [neg(base), neg(same), neg(head)];
  const launchArms = {
    base: timed(base, false, nb),
    same: timed(same, false, ns),
    off: timed(head, false, nh),
    on: timed(head, true, nh),
  };
  await alternate(launchArms, 5);
  const launch = await alternate(launchArms, blocks);
  out["launch (ns/op)"] = scale(launch, 1e6 / 5000);
  // nano: one training step of a nano GPT on the CPU.
  const nano = (e: Engine) => {
    const config = { ...e.m.getPreset("nano").model, vocabSize: 65 };
    const model = e.m.createModel("gpt", config, { generator: new e.m.Generator(1) });
    const opt = new e.m.AdamW(model, { lr: 1e-3 });
    const [B, T] = [4, config.blockSize];
    const ids = Int32Array.from({ length: B * T + 1 }, (_, i) => (i * 7 + 3) % 65);
    return () =>
      e.m.tidy(() => {
        const xs = e.m.tensor(ids.subarray(0, B * T), [B, T], { dtype: "i32" });
        const ys = e.m.tensor(ids.subarray(1), [B, T], { dtype: "i32" });
        model.forward(xs, ys).loss.backward();
        opt.step();
        opt.zeroGrad();
      });
  };
  const nanoArms = {
    base: timed(base, false, nano(base)),
    same: timed(same, false, nano(same)),
    off: timed(head, false, nano(head)),
    on: timed(head, true, nano(head)),
  };
  await alternate(nanoArms, 5);
  out["nano step (ms)"] = await alternate(nanoArms, blocks);
  // dispatch: neg of 64 floats on WebGPU, recorded and submitted, not waited for.
  if (await head.m.hasWebGPU()) {
    const gpuNeg = async (e: Engine) => {
      const g = await e.m.useBackend("webgpu");
      const y = e.m.tensor(Array.from({ length: 64 }, (_, i) => i), [64]);
      await e.m.neg(y).data();
      return async () => {
        for (let i = 0; i < 500; i++) e.m.neg(y).dispose();
        g.flush?.();
        return await Promise.resolve();
      };
    };
    const [db, ds, dh] = [await gpuNeg(base), await gpuNeg(same), await gpuNeg(head)];
    const sync = async () => {
      for (const e of [base, same, head]) await (await e.m.useBackend("webgpu")).sync();
    };
    const arm = (e: Engine, on: boolean, f: () => Promise<void>) => async () => {
      const ms = await timed(e, on, f)();
      await sync(); // outside the timing: the device catches up between blocks
      return ms;
    };
    const gpuArms = {
      base: arm(base, false, db),
      same: arm(same, false, ds),
      off: arm(head, false, dh),
      on: arm(head, true, dh),
    };
    await alternate(gpuArms, 5);
    const d = await alternate(gpuArms, blocks);
    out["dispatch (ns/op)"] = scale(d, 1e6 / 500);
  }
  return out;
}

function scale(s: Record<Arm, number[]>, k: number): Record<Arm, number[]> {
  const out = {} as Record<Arm, number[]>;
  for (const a of ARMS) out[a] = s[a].map((v) => v * k);
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/** Median of `xs` and its bootstrap 95% interval (2,000 resamples, seeded). */
function medianCI(xs: number[]): [number, number, number] {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const meds = Array.from(
    { length: 2000 },
    () => median(Array.from({ length: xs.length }, () => xs[Math.floor(rand() * xs.length)])),
  );
  meds.sort((a, b) => a - b);
  return [median(xs), meds[50], meds[1949]];
}

async function harness(base: string, processes: number, blocks: number): Promise<void> {
  const head = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
  const dirs = [await Deno.makeTempDir({ prefix: "bitgpt_base_" })];
  dirs.push(await Deno.makeTempDir({ prefix: "bitgpt_base_" }));
  for (const dir of dirs) {
    const git = `git -C ${head} archive ${base} | tar -x -C ${dir}`;
    const r = await new Deno.Command("sh", { args: ["-c", git] }).output();
    if (r.code !== 0) throw new Error(`extracting ${base}: ${new TextDecoder().decode(r.stderr)}`);
  }
  const all: Samples = {};
  try {
    for (let p = 0; p < processes; p++) {
      const self = new URL(import.meta.url).pathname;
      const args = ["run", "-A", self, "--pairs", dirs.join(","), "--blocks", String(blocks)];
      const out = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit" }).output();
      if (out.code !== 0) throw new Error(`process ${p} failed (${out.code})`);
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      const s: Samples = JSON.parse(lines[lines.length - 1]);
      for (const [k, arms] of Object.entries(s)) {
        all[k] ??= { base: [], same: [], off: [], on: [] };
        for (const a of ARMS) all[k][a].push(...arms[a]);
      }
      console.error(`process ${p + 1}/${processes} done`);
    }
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
  const pct = ([m, lo, hi]: number[]) =>
    `${((m - 1) * 100).toFixed(1)}% [${((lo - 1) * 100).toFixed(1)}, ${
      ((hi - 1) * 100).toFixed(1)
    }]`;
  console.log(
    `\n${processes} processes × ${blocks} interleaved blocks; base ${base}, head this tree`,
  );
  console.log(
    "| workload | base | off | on | base again / base − 1 | off / base − 1 | on / base − 1 |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const [k, s] of Object.entries(all)) {
    const ratio = (a: Arm) => medianCI(s[a].map((v, i) => v / s.base[i]));
    console.log(
      `| ${k} | ${fmt(median(s.base))} | ${fmt(median(s.off))} | ${fmt(median(s.on))} | ` +
        `${pct(ratio("same"))} | ${pct(ratio("off"))} | ${pct(ratio("on"))} |`,
    );
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    pairs: { type: "string" },
    base: { type: "string", default: "d6c7774" },
    processes: { type: "string", default: "3" },
    blocks: { type: "string", default: "60" },
  },
});
const here = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
if (values.pairs) {
  const roots = values.pairs.split(",");
  console.log(JSON.stringify(await pairs(roots, here, Number(values.blocks))));
} else {
  await harness(values.base, Number(values.processes), Number(values.blocks));
}
