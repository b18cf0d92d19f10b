// Autotuning of kernels with several equivalent WGSL variants (matmul's tile shapes). A kernel
// returns a TunableLaunch: its default variant plus a shape-class key and the other candidates.
// The first time a key is seen the default runs and the key is queued; at the next read or sync
// (already an async round trip) every queued key is timed once on a trial problem in scratch
// buffers and the fastest candidate is cached for the life of the backend, i.e. per adapter.
// Timing: GPU timestamps around each candidate's compute pass when the device has the
// "timestamp-query" feature (llvmpipe has it), else wall clock around submit +
// onSubmittedWorkDone. Every candidate is first dispatched on a 1×1×1 grid and waited for, so
// lazy shader compilation (llvmpipe compiles at first dispatch) stays out of the timings; then
// each runs twice and its best time counts, except that a candidate already 4× slower than the
// best after one timed run is not run again.
// Steady state costs one Map lookup per dispatch: no extra submits, no waits.

import type { WgslLaunch } from "../backend.ts";

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
  /** Best milliseconds per candidate (Infinity where pruned). */
  ms: number[];
  chosen: number;
  /** How the candidates were timed. */
  clock: "timestamp" | "wall";
}

/** How the tuner reaches the backend's pipeline cache. */
export type PipelineSource = (label: string, source: string) => GPUComputePipeline;

const PRUNE_FACTOR = 4;

/** A candidate ready to dispatch on the trial problem. */
interface Prepared {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
  uniform: GPUBuffer | null;
}

/** Per-backend cache of tuning decisions and the queue of keys waiting to be timed. */
export class Autotuner {
  #chosen = new Map<string, number>();
  #pending = new Map<string, Tunable>();
  #results: TuneResult[] = [];

  constructor(
    readonly device: GPUDevice,
    readonly pipeline: PipelineSource,
    readonly timestamps: boolean,
  ) {}

  /** When false, tunable launches run their default and nothing is queued (tests, debugging). */
  enabled = true;

  /** The launch to run now: the cached winner, or the default while the key waits to be timed. */
  select(launch: TunableLaunch): TunableLaunch {
    const tune = launch.tune;
    if (!tune || !this.enabled) return launch;
    const i = this.#chosen.get(tune.key);
    if (i === undefined) {
      if (!this.#pending.has(tune.key)) this.#pending.set(tune.key, tune);
      return launch;
    }
    return i === 0 ? launch : tune.launch(i);
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

  /** Time every queued key's candidates and cache the winners. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) {
      const [key, tune] = this.#pending.entries().next().value!;
      this.#pending.delete(key);
      const ms = await this.#time(tune);
      let chosen = 0;
      ms.forEach((t, i) => (t < ms[chosen] ? (chosen = i) : 0));
      this.#chosen.set(key, chosen);
      this.#results.push({
        key,
        names: tune.names,
        ms,
        chosen,
        clock: this.timestamps ? "timestamp" : "wall",
      });
    }
  }

  async #time(tune: Tunable): Promise<number[]> {
    const trial = tune.trial();
    const buffers = trial.bindingBytes.map((bytes) =>
      this.device.createBuffer({
        size: Math.max(16, Math.ceil(bytes / 16) * 16),
        usage: GPUBufferUsage.STORAGE,
      })
    );
    const n = tune.names.length;
    const best = new Array<number>(n).fill(Infinity);
    const runs: Prepared[] = [];
    try {
      for (let i = 0; i < n; i++) runs.push(this.#prepare(tune, trial, i, buffers));
      await this.#warm(runs);
      for (let round = 0; round < 2; round++) {
        const floor = Math.min(...best);
        const active = runs.map((_, i) => round === 0 || best[i] <= PRUNE_FACTOR * floor);
        const ms = await this.#round(runs, active);
        ms.forEach((t, i) => (best[i] = Math.min(best[i], t)));
      }
    } finally {
      for (const b of buffers) b.destroy();
      for (const r of runs) r.uniform?.destroy();
    }
    return best;
  }

  /** Dispatch every candidate once on a 1×1×1 grid and wait: compiles, untimed. */
  async #warm(runs: Prepared[]): Promise<void> {
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (const r of runs) {
      pass.setPipeline(r.pipeline);
      pass.setBindGroup(0, r.bindGroup);
      pass.dispatchWorkgroups(1, 1, 1);
    }
    pass.end();
    this.device.queue.submit([enc.finish()]);
    await this.device.queue.onSubmittedWorkDone();
  }

  #prepare(tune: Tunable, trial: TuneTrial, i: number, buffers: GPUBuffer[]): Prepared {
    const launch = trial.launch(i);
    const pipeline = this.pipeline(`${tune.names[i]}`, launch.source);
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, b) => ({
      binding: b,
      resource: { buffer },
    }));
    let uniform: GPUBuffer | null = null;
    if (launch.uniforms) {
      const u = launch.uniforms;
      uniform = this.device.createBuffer({
        size: Math.ceil(u.byteLength / 16) * 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.device.queue.writeBuffer(uniform, 0, u.buffer, u.byteOffset, u.byteLength);
      entries.push({ binding: entries.length, resource: { buffer: uniform } });
    }
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    return { pipeline, bindGroup, grid: launch.grid, uniform };
  }

  /** One run of each active candidate; milliseconds per candidate (Infinity if inactive). */
  async #round(runs: Prepared[], active: boolean[]): Promise<number[]> {
    const ms = new Array<number>(runs.length).fill(Infinity);
    if (this.timestamps) {
      const count = 2 * runs.length;
      const querySet = this.device.createQuerySet({ type: "timestamp", count });
      const resolve = this.device.createBuffer({
        size: 8 * count,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const read = this.device.createBuffer({
        size: 8 * count,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const enc = this.device.createCommandEncoder();
      runs.forEach((r, i) => {
        if (!active[i]) return;
        const pass = enc.beginComputePass({
          timestampWrites: {
            querySet,
            beginningOfPassWriteIndex: 2 * i,
            endOfPassWriteIndex: 2 * i + 1,
          },
        });
        pass.setPipeline(r.pipeline);
        pass.setBindGroup(0, r.bindGroup);
        pass.dispatchWorkgroups(...r.grid);
        pass.end();
      });
      enc.resolveQuerySet(querySet, 0, count, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, read, 0, 8 * count);
      this.device.queue.submit([enc.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const ts = new BigInt64Array(read.getMappedRange().slice(0));
      read.unmap();
      for (const b of [resolve, read]) b.destroy();
      querySet.destroy();
      runs.forEach((_, i) => {
        if (active[i]) ms[i] = Number(ts[2 * i + 1] - ts[2 * i]) / 1e6;
      });
      return ms;
    }
    for (let i = 0; i < runs.length; i++) {
      if (!active[i]) continue;
      const r = runs[i];
      const enc = this.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(r.pipeline);
      pass.setBindGroup(0, r.bindGroup);
      pass.dispatchWorkgroups(...r.grid);
      pass.end();
      const t0 = performance.now();
      this.device.queue.submit([enc.finish()]);
      await this.device.queue.onSubmittedWorkDone();
      ms[i] = performance.now() - t0;
    }
    return ms;
  }
}
