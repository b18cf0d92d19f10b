// Autotuning of kernels with several equivalent WGSL variants (matmul's tile shapes). A kernel
// returns a TunableLaunch: its default variant plus a shape-class key and the other candidates.
// The first time a key is seen the default runs and the key is queued; at the next read or sync
// (already an async round trip) every queued key is timed once on a trial problem in scratch
// buffers and the fastest candidate is cached for the life of the backend, i.e. per adapter.
// Candidates are tried in stages: a candidate may name another that must lead (be within 25% of
// the fastest so far) before it is even compiled, so slow-to-compile candidates (a 32×32
// register block compiles for seconds on a CPU adapter) are tried only where a cheap sibling
// shows that their family pays.
// A candidate's texture stages (WgslLaunch.stages) are part of it: their copies and fill
// kernels are timed with its main kernel, each candidate on its own scratch textures.
// Timing: GPU timestamps around each candidate's compute pass when the device has the
// "timestamp-query" feature (llvmpipe has it), else wall clock around submit +
// onSubmittedWorkDone. Every candidate of a stage is first dispatched on a 1×1×1 grid and
// waited for, so lazy shader compilation (llvmpipe compiles at first dispatch) stays out of the
// timings (it is reported apart, as compileMs); then the stage's candidates and those earlier
// ones within 2× of the fastest run in rounds (at least three, more until each has run 60 ms in
// all, at most eight), each round one submit with every candidate, and each one's median time
// in the stage counts, except that a candidate already 4× slower than the fastest after one
// timed run is not run again. The median, not the minimum: on a shared CPU adapter a burst of
// other work slows some runs and a host's clock boost speeds up others, and one lucky run
// should not decide.
// Steady state costs one Map lookup per dispatch: no extra submits, no waits.
// Decisions outlive the process through a TuneMemo (tune_store.ts): a key seen for the first time
// in a process is looked up there (under a fingerprint of its candidates) before it is queued, and
// every decision made is written back. `onProgress` hears when timing starts, each key, and the
// end, so a program can say why its first step waits.

import type { WgslLaunch } from "../backend.ts";
import { passMs, TimestampBatch } from "./timestamps.ts";
import { fingerprint, type TuneMemo } from "./tune_store.ts";

/** A trial problem for timing: scratch buffer sizes and the launch of each candidate on it. */
export interface TuneTrial {
  /** Bytes of each input, then each output, binding (fresh zeroed scratch buffers). */
  bindingBytes: number[];
  /** The launch of candidate `i` on the trial problem. */
  launch(i: number): WgslLaunch;
}

/** What a kernel offers for tuning along with its default launch. */
export interface Tunable {
  /** Shape class: launches with equal keys share one decision. */
  key: string;
  /** Candidate names (index 0 is the default, the one the launch itself holds). */
  names: readonly string[];
  /** The launch of candidate `i` for the real call. */
  launch(i: number): WgslLaunch;
  /** The trial problem timed for this key. */
  trial(): TuneTrial;
  /**
   * Per candidate: the index of the candidate that must lead (be within 25% of the fastest so
   * far) before this one is tried, or -1 to try it from the start (absent: all from the start).
   */
  after?: readonly number[];
}

/** A launch that may be swapped for another candidate; `label` names the variant in errors. */
export interface TunableLaunch extends WgslLaunch {
  label?: string;
  tune?: Tunable;
}

/** The outcome of tuning one key, for logs and benchmarks. */
export interface TuneResult {
  key: string;
  names: readonly string[];
  /** Median milliseconds per candidate over its last stage's runs (Infinity if never tried). */
  ms: number[];
  chosen: number;
  /** Milliseconds spent compiling the candidates tried (their first dispatch included). */
  compileMs: number;
  /** How the candidates were timed. */
  clock: "timestamp" | "wall";
}

/**
 * What the tuner is doing, for progress displays: a key's decision restored from an earlier run;
 * timing started for `total` queued keys; key `done + 1` of `total` about to be timed; timing
 * finished after `ms` milliseconds.
 */
export type TuneProgress =
  | { phase: "restored"; key: string; chosen: string }
  | { phase: "start"; total: number }
  | { phase: "key"; key: string; done: number; total: number }
  | { phase: "end"; total: number; ms: number };

/** How the tuner reaches the backend's pipeline cache. */
export type PipelineSource = (label: string, source: string) => GPUComputePipeline;

const PRUNE_FACTOR = 4;
/** Candidates within this factor of the fastest are timed again in the next stage. */
const CARRY_FACTOR = 2;
/** A gated candidate is tried once its gate is within this factor of the fastest so far (one
 * noisy sample should not keep a candidate out on a busy CPU adapter). */
const GATE_SLACK = 1.25;
/** Timed runs per candidate: at least MIN_ROUNDS, more while a candidate has run for less than
 * MIN_TIMED_MS in all (two runs are too few for trials of a few ms on a shared CPU). */
const MIN_ROUNDS = 3;
const MAX_ROUNDS = 8;
const MIN_TIMED_MS = 60;

/** One dispatch of a candidate. */
interface Dispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
}

/** A buffer-to-texture copy of a staged input. */
interface Copy {
  src: GPUTexelCopyBufferInfo;
  dst: GPUTexelCopyTextureInfo;
  size: [number, number, number];
}

/** A candidate ready to run on the trial problem: its stages' copies and fills, then `main`. */
interface Prepared {
  copies: Copy[];
  dispatches: Dispatch[];
}

/** Per-backend cache of tuning decisions and the queue of keys waiting to be timed. */
export class Autotuner {
  #chosen = new Map<string, number>();
  #pending = new Map<string, Tunable>();
  #fingerprints = new Map<string, string>();
  #results: TuneResult[] = [];
  #restored = 0;

  constructor(
    readonly device: GPUDevice,
    readonly pipeline: PipelineSource,
    readonly timestamps: boolean,
    /** Decisions of earlier runs on this adapter; null: every process tunes afresh. */
    public memo: TuneMemo | null = null,
  ) {}

  /** When false, tunable launches run their default and nothing is queued (tests, debugging). */
  enabled = true;

  /** Told when decisions are restored and while keys are timed (see TuneProgress). */
  onProgress: ((p: TuneProgress) => void) | null = null;

  /** The launch to run now: the cached winner, or the default while the key waits to be timed. */
  select(launch: TunableLaunch): TunableLaunch {
    const tune = launch.tune;
    if (!tune || !this.enabled) return launch;
    let i = this.#chosen.get(tune.key);
    if (i === undefined && !this.#pending.has(tune.key)) {
      i = this.#restore(tune);
      if (i === undefined) this.#pending.set(tune.key, tune);
    }
    if (i === undefined) return launch;
    return i === 0 ? launch : tune.launch(i);
  }

  /** Keys whose decision came from an earlier run instead of being timed. */
  get restored(): number {
    return this.#restored;
  }

  /** The decision an earlier run stored for this key over the same candidates, if any. */
  #restore(tune: Tunable): number | undefined {
    if (!this.memo) return undefined;
    const fp = this.#fingerprint(tune);
    const name = this.memo.get(tune.key, fp);
    const i = name === null ? -1 : tune.names.indexOf(name);
    if (i < 0) return undefined;
    this.#chosen.set(tune.key, i);
    this.#restored++;
    this.onProgress?.({ phase: "restored", key: tune.key, chosen: name! });
    return i;
  }

  /** A key's candidates as a fingerprint: their names and WGSL on the trial problem. */
  #fingerprint(tune: Tunable): string {
    let fp = this.#fingerprints.get(tune.key);
    if (fp === undefined) {
      const trial = tune.trial();
      const parts: string[] = [tune.key, ...tune.names];
      tune.names.forEach((_, i) => {
        const l = trial.launch(i);
        parts.push(l.source, ...(l.stages ?? []).map((st) => st.fill?.source ?? ""));
      });
      fp = fingerprint(parts);
      this.#fingerprints.set(tune.key, fp);
    }
    return fp;
  }

  /** Decisions made so far. */
  results(): readonly TuneResult[] {
    return this.#results;
  }

  /** Force a decision for a key (tests, or restoring an earlier run's results). */
  set(key: string, index: number): void {
    this.#chosen.set(key, index);
    this.#pending.delete(key);
  }

  /** Is any key waiting to be timed? */
  get hasPending(): boolean {
    return this.#pending.size > 0;
  }

  /** Time every queued key's candidates, cache the winners and store them for later runs. */
  async settle(): Promise<void> {
    if (this.#pending.size === 0) return;
    const t0 = performance.now();
    let done = 0;
    this.onProgress?.({ phase: "start", total: this.#pending.size });
    while (this.#pending.size > 0) {
      const [key, tune] = this.#pending.entries().next().value!;
      this.onProgress?.({ phase: "key", key, done, total: done + this.#pending.size });
      this.#pending.delete(key);
      const { ms, compileMs } = await this.#time(tune);
      const chosen = fastest(ms);
      this.#chosen.set(key, chosen);
      this.memo?.set(key, this.#fingerprint(tune), tune.names[chosen]);
      done++;
      this.#results.push({
        key,
        names: tune.names,
        ms,
        chosen,
        compileMs,
        clock: this.timestamps ? "timestamp" : "wall",
      });
    }
    this.onProgress?.({ phase: "end", total: done, ms: performance.now() - t0 });
  }

  /** Time the candidates stage by stage (see the file header); their ms and compile time. */
  async #time(tune: Tunable): Promise<{ ms: number[]; compileMs: number }> {
    const trial = tune.trial();
    const buffers = trial.bindingBytes.map((bytes) =>
      this.device.createBuffer({
        size: Math.max(16, Math.ceil(bytes / 16) * 16),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, // COPY_SRC: staged textures
      })
    );
    const n = tune.names.length;
    const after = (i: number) => tune.after?.[i] ?? -1;
    const ms = new Array<number>(n).fill(Infinity);
    const runs: (Prepared | undefined)[] = new Array(n).fill(undefined);
    const owned: (GPUBuffer | GPUTexture)[] = []; // scratch of every candidate
    let compileMs = 0;
    try {
      let stage = [...Array(n).keys()].filter((i) => after(i) < 0);
      while (stage.length > 0) {
        const t0 = performance.now();
        for (const i of stage) runs[i] = this.#prepare(tune, trial, i, buffers, owned);
        await this.#warm(stage.map((i) => runs[i]!));
        compileMs += performance.now() - t0;
        // Candidates still in the running are timed again beside the newcomers: candidates
        // compared in the same rounds see the same interference from other processes.
        const floor0 = Math.min(...ms);
        const timed = new Set(stage);
        for (let i = 0; i < n; i++) {
          if (Number.isFinite(ms[i]) && ms[i] <= CARRY_FACTOR * floor0) timed.add(i);
        }
        const stageMs = await this.#stage(runs, timed);
        for (const i of timed) ms[i] = stageMs[i];
        const floor = Math.min(...ms);
        stage = [...Array(n).keys()].filter((i) =>
          !runs[i] && after(i) >= 0 && ms[after(i)] <= GATE_SLACK * floor
        );
      }
    } finally {
      for (const b of buffers) b.destroy();
      for (const o of owned) o.destroy();
    }
    return { ms, compileMs };
  }

  /** Rounds over the candidates in `timed` (see the file header): each one's median ms. */
  async #stage(runs: (Prepared | undefined)[], timed: Set<number>): Promise<number[]> {
    const samples: number[][] = runs.map(() => []);
    const spent = (i: number) => samples[i].reduce((x, y) => x + y, 0);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const first = samples.map((s) => s[0] ?? Infinity);
      const floor = Math.min(...first);
      const active = runs.map((_, i) =>
        timed.has(i) && (round === 0 || first[i] <= PRUNE_FACTOR * floor)
      );
      if (round >= MIN_ROUNDS && active.every((a, i) => !a || spent(i) >= MIN_TIMED_MS)) break;
      const ms = await this.#round(runs, active);
      ms.forEach((t, i) => Number.isFinite(t) && samples[i].push(t));
    }
    return samples.map((s) => (s.length > 0 ? median(s) : Infinity));
  }

  /** Dispatch every candidate once on a 1×1×1 grid and wait: compiles, untimed. */
  async #warm(runs: Prepared[]): Promise<void> {
    const enc = this.device.createCommandEncoder();
    for (const r of runs) for (const c of r.copies) enc.copyBufferToTexture(c.src, c.dst, c.size);
    const pass = enc.beginComputePass();
    for (const r of runs) {
      for (const d of r.dispatches) {
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, d.bindGroup);
        pass.dispatchWorkgroups(1, 1, 1);
      }
    }
    pass.end();
    this.device.queue.submit([enc.finish()]);
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Candidate `i` ready to run; what it creates goes into `owned` at once (destroyed by the
   * caller even if preparing throws). */
  #prepare(
    tune: Tunable,
    trial: TuneTrial,
    i: number,
    buffers: GPUBuffer[],
    owned: (GPUBuffer | GPUTexture)[],
  ): Prepared {
    const launch = trial.launch(i);
    const resources: GPUBindingResource[] = buffers.map((buffer) => ({ buffer }));
    const dispatches: Dispatch[] = [];
    const dispatch = (
      label: string,
      source: string,
      bound: GPUBindingResource[],
      u: ArrayBufferView | undefined,
      grid: [number, number, number],
    ) => {
      const pipeline = this.pipeline(label, source);
      const entries: GPUBindGroupEntry[] = bound.map((resource, b) => ({ binding: b, resource }));
      if (u) {
        // A copy in a fresh ArrayBuffer: writeBuffer takes no view of a SharedArrayBuffer.
        const padded = new Uint8Array(Math.ceil(u.byteLength / 16) * 16);
        padded.set(new Uint8Array(u.buffer, u.byteOffset, u.byteLength));
        const uniform = this.device.createBuffer({
          size: padded.byteLength,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
        this.device.queue.writeBuffer(uniform, 0, padded);
        owned.push(uniform);
        entries.push({ binding: entries.length, resource: { buffer: uniform } });
      }
      const layout = pipeline.getBindGroupLayout(0);
      dispatches.push({
        pipeline,
        bindGroup: this.device.createBindGroup({ layout, entries }),
        grid,
      });
    };
    const copies: Copy[] = [];
    for (const st of launch.stages ?? []) {
      const texture = this.device.createTexture({
        size: [st.width, st.height, st.layers],
        format: st.format ?? "rgba32float",
        usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
      });
      owned.push(texture);
      const view = texture.createView({ dimension: "2d-array" });
      const buffer = buffers[st.input];
      if (st.copy) {
        const { offset, bytesPerRow, rowsPerImage, size } = st.copy;
        copies.push({ src: { buffer, offset, bytesPerRow, rowsPerImage }, dst: { texture }, size });
      } else {
        const { source, grid, uniforms } = st.fill!;
        dispatch(st.label, source, [{ buffer }, view], uniforms, grid);
      }
      resources[st.input] = view;
    }
    dispatch(tune.names[i], launch.source, resources, launch.uniforms, launch.grid);
    return { copies, dispatches };
  }

  /** One run of each active candidate; milliseconds per candidate (Infinity if inactive). */
  async #round(runs: (Prepared | undefined)[], active: boolean[]): Promise<number[]> {
    const ms = new Array<number>(runs.length).fill(Infinity);
    if (this.timestamps) {
      const stamps = new TimestampBatch(this.device, runs.length);
      const enc = this.device.createCommandEncoder();
      runs.forEach((r, i) => {
        if (!active[i] || !r) return;
        // The copies sit between an empty pass that stamps the start and the dispatches' pass
        // that stamps the end, so they are timed too.
        if (r.copies.length > 0) {
          enc.beginComputePass({ timestampWrites: stamps.writes(i, "begin") }).end();
        }
        for (const c of r.copies) enc.copyBufferToTexture(c.src, c.dst, c.size);
        const pass = enc.beginComputePass({
          timestampWrites: stamps.writes(i, r.copies.length > 0 ? "end" : "both"),
        });
        encode(pass, r);
        pass.end();
      });
      stamps.resolve(enc);
      this.device.queue.submit([enc.finish()]);
      const ts = await stamps.read();
      runs.forEach((r, i) => {
        if (active[i] && r) ms[i] = passMs(ts, i);
      });
      return ms;
    }
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i];
      if (!active[i] || !r) continue;
      const enc = this.device.createCommandEncoder();
      for (const c of r.copies) enc.copyBufferToTexture(c.src, c.dst, c.size);
      const pass = enc.beginComputePass();
      encode(pass, r);
      pass.end();
      const t0 = performance.now();
      this.device.queue.submit([enc.finish()]);
      await this.device.queue.onSubmittedWorkDone();
      ms[i] = performance.now() - t0;
    }
    return ms;
  }
}

/** Record a candidate's dispatches (stage fills first, so their cost is timed too). */
function encode(pass: GPUComputePassEncoder, r: Prepared): void {
  for (const d of r.dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(...d.grid);
  }
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Index of the smallest time (the first on ties). */
function fastest(ms: readonly number[]): number {
  let best = 0;
  ms.forEach((t, i) => (t < ms[best] ? (best = i) : 0));
  return best;
}
