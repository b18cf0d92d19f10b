// The WebGPU backend: pooled storage buffers, a pipeline cache keyed by WGSL source, and command
// batching. Dispatches share one compute pass of one command encoder, which is submitted only at
// read points or every MAX_BATCH dispatches; nothing submits or waits per op. Uniform blocks and
// bind groups are reused through binding.ts; kernels with several variants are autotuned at
// read points through autotune.ts. A launch may stage inputs in scratch textures first
// (WgslLaunch.stages: a copy or a fill kernel, textures pooled in textures.ts). Compilation and
// validation errors are captured per pipeline and thrown at the next read or sync. While a
// profile records (engine/profile.ts), each dispatch gets a compute pass of its own, stamped by
// the device where it has "timestamp-query" (timestamps.ts).

import type { ArgInfo, Backend, BackendTraits, BoundArg, Kernel, Storage } from "../backend.ts";
import type { DType, TypedArray } from "../dtype.ts";
import { allocArray, byteSize } from "../dtype.ts";
import { DeviceError, ShaderCompileError } from "../errors.ts";
import { BufferPool, type PoolStats } from "./pool.ts";
import { acquireDevice, describeContext, type GpuContext } from "./device.ts";
import { Autotuner, type TunableLaunch, type TuneResult } from "./autotune.ts";
import { defaultTuneStore, TuneMemo, tuneScope } from "./tune_store.ts";
import { BindingCache, type BindingStats, type Resource, type UniformSlot } from "./binding.ts";
import { type ScratchTexture, TexturePool, type TextureStats } from "./textures.ts";
import { activeProfile, type DispatchRecord, type ProfileSession } from "../profile.ts";
import { TimestampBatch } from "./timestamps.ts";

/** Dispatches per submit: bounds the work queued behind one submit and the encoder's size. */
export const MAX_BATCH = 256;

/** WebGPU storage: a pooled buffer holding `size` elements. */
export class GpuStorage implements Storage {
  readonly backend = "webgpu";
  constructor(readonly buffer: GPUBuffer, readonly dtype: DType, readonly size: number) {}
  get bytes(): number {
    return this.size * byteSize(this.dtype);
  }
}

/**
 * Running in the Deno runtime, where the backend does not wait on `device.lost`: Deno implements
 * it as an async op that keeps a reference to the device until the promise settles, and a runtime
 * torn down with it pending (each `deno test` file is one) frees the device under it, corrupting
 * the heap ("double free or corruption" at exit, a few percent of 60-file test runs on llvmpipe).
 * A lost device still surfaces there: the next read's mapAsync fails (`read`).
 */
function underDeno(): boolean {
  return typeof navigator !== "undefined" && /^Deno\//.test(navigator.userAgent ?? "");
}

/** The elements an argument spans in its storage: [first, end). */
function span(a: ArgInfo): [number, number] {
  let lo = a.offset;
  let hi = a.offset + 1;
  for (let d = 0; d < a.shape.length; d++) {
    if (a.shape[d] === 0) return [a.offset, a.offset];
    const step = (a.shape[d] - 1) * a.strides[d];
    if (step < 0) lo += step;
    else hi += step;
  }
  return [lo, hi];
}

function gpuStorage(s: Storage): GpuStorage {
  if (!(s instanceof GpuStorage)) throw new Error(`webgpu backend given ${s.backend} storage`);
  return s;
}

/** Counters of the backend, for tests and `--verbose`. */
export interface WebGpuStats extends PoolStats, BindingStats, TextureStats {
  dispatches: number;
  submits: number;
  pipelines: number;
}

/** Runs kernels' WGSL on a WebGPU device. */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  readonly pool: BufferPool;
  /** Scratch textures of staged launches (WgslLaunch.stages). */
  readonly textures: TexturePool;
  readonly device: GPUDevice;
  #traits: BackendTraits;
  #pipelines = new Map<string, GPUComputePipeline>();
  #checks: Promise<void>[] = [];
  #error: Error | null = null;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #batched = 0;
  #bindings: BindingCache;
  #counters = { dispatches: 0, submits: 0 };
  #afterSubmit: GPUBuffer[] = [];
  /** While profiling on a device with timestamps: this encoder's stamped dispatches. */
  #stamps: { batch: TimestampBatch; recs: DispatchRecord[]; session: ProfileSession } | null = null;
  #flushFn = () => this.flush();
  /** Matmul's variant choices: decisions kept across runs, progress hook (autotune.ts). */
  readonly tuner: Autotuner;

  private constructor(readonly ctx: GpuContext) {
    this.device = ctx.device;
    this.#traits = {
      maxBindingBytes: ctx.limits.maxStorageBufferBindingSize,
      bindingAlign: ctx.limits.minStorageBufferOffsetAlignment,
      // One buffer per tensor, and the pool may round a request up by a quarter.
      maxTensorBytes: Math.floor(ctx.limits.maxBufferSize / 1.25),
      // llvmpipe ends an invocation's loops after 65,535 iterations in all, without an error.
      maxLoopIterations: ctx.isFallback ? 65535 : Infinity,
      gpu: ctx,
    };
    this.pool = new BufferPool(ctx.device, ctx.limits.maxBufferSize);
    this.textures = new TexturePool(ctx.device);
    this.#bindings = new BindingCache(ctx.device, () => this.flush());
    const store = defaultTuneStore();
    this.tuner = new Autotuner(
      ctx.device,
      (label, source) => this.#pipeline(label, source),
      ctx.device.features.has("timestamp-query"),
      store && new TuneMemo(store, tuneScope(ctx.info)),
    );
    this.device.addEventListener("uncapturederror", (e) => {
      this.#error ??= new DeviceError(`webgpu: ${(e as GPUUncapturedErrorEvent).error.message}`);
    });
    if (!underDeno()) {
      this.device.lost.then((info) => {
        this.#error ??= new DeviceError(`webgpu: device lost (${info.reason}): ${info.message}`);
      });
    }
  }

  /** Acquire the adapter and device. */
  static async create(): Promise<WebGpuBackend> {
    return new WebGpuBackend(await acquireDevice());
  }

  /** One line naming the adapter and its limits. */
  describe(): string {
    return describeContext(this.ctx);
  }

  /**
   * Turn autotuning on or off (on by default). Off, tunable kernels run their default variant:
   * useful where the one-time cost of compiling and timing every candidate matters more than
   * speed (short tests on llvmpipe, where a cold compile of all matmul variants takes ~10 s).
   */
  setAutotune(on: boolean): void {
    this.tuner.enabled = on;
  }

  /** The autotuner's decisions so far (shape class, candidates, their times, the winner). */
  tuning(): readonly TuneResult[] {
    return this.tuner.results();
  }

  /** Pool and dispatch counters. */
  stats(): WebGpuStats {
    return {
      ...this.pool.stats,
      ...this.#bindings.stats,
      ...this.textures.stats,
      ...this.#counters,
      pipelines: this.#pipelines.size,
    };
  }

  /** What kernels and ops may know of this device. */
  get traits(): BackendTraits {
    return this.#traits;
  }

  /**
   * The largest range one storage binding may hold, in bytes (the device's
   * maxStorageBufferBindingSize). Larger tensors are one buffer bound in pieces (engine/op.ts).
   */
  get maxBindingBytes(): number {
    return this.#traits.maxBindingBytes;
  }

  /**
   * Bind at most `bytes` per argument (at most the device's limit; null restores it), so that
   * launches run as the pieces of their kernels' split rules: for tests of those rules.
   */
  limitBindings(bytes: number | null): void {
    const device = this.ctx.limits.maxStorageBufferBindingSize;
    this.#traits = { ...this.#traits, maxBindingBytes: Math.min(bytes ?? device, device) };
  }

  alloc(size: number, dtype: DType): Storage {
    const bytes = size * byteSize(dtype);
    return new GpuStorage(this.pool.acquire(Math.max(bytes, 4)), dtype, size);
  }

  upload(data: TypedArray, dtype: DType): Storage {
    const s = this.alloc(data.length, dtype);
    this.write(s, data);
    return s;
  }

  write(storage: Storage, data: TypedArray): void {
    const s = gpuStorage(storage);
    const bytes = Math.ceil(data.byteLength / 4) * 4;
    if (bytes === 0) return;
    // Staged through the encoder so the copy is ordered after work already recorded.
    const staging = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    staging.unmap();
    this.#endPass();
    this.#enc().copyBufferToBuffer(staging, 0, s.buffer, 0, bytes);
    this.#afterSubmit.push(staging); // destroyed once the batch is submitted
  }

  async read(storage: Storage): Promise<TypedArray> {
    const s = gpuStorage(storage);
    const bytes = Math.ceil(s.bytes / 4) * 4;
    const out = allocArray(s.dtype, s.size);
    if (bytes === 0) return out;
    const staging = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#endPass();
    this.#enc().copyBufferToBuffer(s.buffer, 0, staging, 0, bytes);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      staging.destroy();
      await this.#throwDeferred(); // a kernel's own error explains the failure better
      throw new DeviceError(
        `webgpu: reading a result failed (${(e as Error).message}); the device may be lost`,
      );
    }
    new Uint8Array(out.buffer).set(new Uint8Array(staging.getMappedRange(), 0, out.byteLength));
    staging.unmap();
    staging.destroy();
    await this.#settle();
    return out;
  }

  free(storage: Storage): void {
    this.pool.release(gpuStorage(storage).buffer);
  }

  run<P>(kernel: Kernel<P>, inputs: BoundArg[], outputs: BoundArg[], params: P): void {
    const args = [...inputs, ...outputs];
    // A piece of a split launch (some storage is over one binding): every argument is bound
    // from the aligned start of the range it spans, its offset relative to that.
    const piece = args.some((a) => gpuStorage(a.storage).bytes > this.maxBindingBytes);
    const bound = args.map((a) => this.#bind(a, piece));
    const info = bound.map((b) => b.info);
    const launch = this.tuner.select(
      kernel.webgpu(
        info.slice(0, inputs.length),
        info.slice(inputs.length),
        params,
        this.ctx, // a GpuContext carries the DeviceTraits (isFallback, hasDot4I8, textures)
      ) as TunableLaunch,
    );
    const pipeline = this.#pipeline(launch.label ?? kernel.name, launch.source);
    const resources: Resource[] = bound.map((b) => b.resource);
    const staged: ScratchTexture[] = [];
    try {
      for (const st of launch.stages ?? []) {
        // Stage the input in a scratch texture; `main` binds the texture instead of the buffer.
        const tex = this.textures.acquire(st.width, st.height, st.layers, st.format);
        const range = bound[st.input].resource;
        if (st.copy) {
          const { offset, bytesPerRow, rowsPerImage, size } = st.copy;
          this.#endPass();
          this.#enc().copyBufferToTexture(
            { buffer: range.buffer, offset: range.offset + offset, bytesPerRow, rowsPerImage },
            { texture: tex.texture },
            size,
          );
        } else {
          const { source, grid, uniforms } = st.fill!;
          const fill = this.#pipeline(st.label, source);
          this.#dispatch(fill, [range, tex.view], this.#bindings.uniform(uniforms), grid);
        }
        resources[st.input] = tex.view;
        staged.push(tex);
      }
      const uniform = launch.uniforms ? this.#bindings.uniform(launch.uniforms) : undefined;
      this.#dispatch(pipeline, resources, uniform, launch.grid);
    } finally {
      // Back to the pool even if recording threw (recorded reads still run first).
      for (const tex of staged) this.textures.release(tex);
    }
  }

  /**
   * The buffer range an argument binds and its layout relative to that range: the whole
   * storage, or (in a piece of a split launch) the range the argument spans, from the last
   * aligned byte at or before its first element.
   */
  #bind(a: BoundArg, piece: boolean): { resource: Required<GPUBufferBinding>; info: ArgInfo } {
    const s = gpuStorage(a.storage);
    const bytes = Math.max(4, Math.ceil(s.bytes / 4) * 4);
    if (!piece) {
      return { resource: { buffer: s.buffer, offset: 0, size: bytes }, info: a.info };
    }
    const el = byteSize(s.dtype);
    const [lo, hi] = span(a.info);
    const align = this.traits.bindingAlign;
    const offset = Math.floor((lo * el) / align) * align;
    const size = Math.max(4, Math.ceil((hi * el - offset) / 4) * 4);
    return {
      resource: { buffer: s.buffer, offset, size },
      info: { ...a.info, offset: a.info.offset - offset / el },
    };
  }

  #dispatch(
    pipeline: GPUComputePipeline,
    resources: Resource[],
    uniform: UniformSlot | undefined,
    grid: [number, number, number],
  ): void {
    const bindGroup = this.#bindings.bindGroup(pipeline, resources, uniform);
    const prof = activeProfile;
    if (prof === null) {
      const pass = this.#computePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...grid);
    } else {
      this.#dispatchProfiled(prof, pipeline, bindGroup, grid);
    }
    this.#counters.dispatches++;
    if (++this.#batched >= MAX_BATCH) this.flush();
  }

  /**
   * A dispatch while a profile records: in a compute pass of its own whose start and end the
   * device stamps (where it can), so each dispatch has its GPU time.
   */
  #dispatchProfiled(
    prof: ProfileSession,
    pipeline: GPUComputePipeline,
    bindGroup: GPUBindGroup,
    grid: [number, number, number],
  ): void {
    const rec = prof.dispatch(pipeline.label, this.#flushFn);
    const timed = this.tuner.timestamps;
    if (timed && (this.#stamps?.batch.full || (this.#stamps && this.#stamps.session !== prof))) {
      this.flush();
    }
    if (timed) this.#endPass();
    const stamps = timed
      ? this.#stamps ??= {
        batch: new TimestampBatch(this.device, MAX_BATCH),
        recs: [],
        session: prof,
      }
      : null;
    const pass = stamps
      ? this.#enc().beginComputePass({ timestampWrites: stamps.batch.next() })
      : this.#computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...grid);
    if (stamps) {
      pass.end();
      stamps.recs.push(rec);
    }
  }

  /** Submit recorded work without waiting for it. */
  flush(): void {
    if (this.#encoder) {
      this.#endPass();
      const stamps = this.#stamps;
      this.#stamps = null;
      stamps?.batch.resolve(this.#encoder);
      this.device.queue.submit([this.#encoder.finish()]);
      if (stamps) stamps.session.timed(stamps.recs, stamps.batch.read());
      activeProfile?.submit();
      this.#counters.submits++;
      for (const b of this.#afterSubmit) b.destroy();
      this.#afterSubmit = [];
      this.#encoder = null;
      this.#batched = 0;
    }
    // Evicted scratch textures: whatever used them is submitted now.
    this.textures.retire();
  }

  /** Destroy pooled (free) buffers and textures, after submitting work that may use them. */
  trim(): void {
    this.flush();
    this.pool.trim();
    this.textures.trim();
    this.#bindings.forgetGroups();
  }

  async sync(): Promise<void> {
    const prof = activeProfile;
    const t0 = prof?.now() ?? 0;
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.#settle();
    prof?.sync("sync", t0);
  }

  /** At a read point: tune shape classes seen since the last one, then surface errors. */
  async #settle(): Promise<void> {
    if (this.tuner.hasPending) {
      const prof = activeProfile;
      const t0 = prof?.now() ?? 0;
      await this.tuner.settle();
      prof?.span({ name: "autotune", cat: "phase", start: t0, dur: prof.now() - t0 });
    }
    await this.#throwDeferred();
  }

  async #throwDeferred(): Promise<void> {
    const checks = this.#checks;
    this.#checks = [];
    await Promise.all(checks);
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      throw e;
    }
  }

  #pipeline(name: string, source: string): GPUComputePipeline {
    const cached = this.#pipelines.get(source);
    if (cached) return cached;
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ code: source, label: name });
    const pipeline = this.device.createComputePipeline({
      label: name,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const scope = this.device.popErrorScope();
    this.#checks.push(
      Promise.all([module.getCompilationInfo(), scope]).then(([info, err]) => {
        const msgs = info.messages.filter((m) => m.type === "error")
          .map((m) => `${m.lineNum}:${m.linePos}: ${m.message.trim()}`);
        if (msgs.length > 0 || err) {
          // Takes precedence over the validation errors a broken pipeline causes downstream.
          if (!(this.#error instanceof ShaderCompileError)) {
            this.#error = new ShaderCompileError(name, msgs.join("; ") || err!.message, source);
          }
        }
      }),
    );
    this.#pipelines.set(source, pipeline);
    return pipeline;
  }

  #enc(): GPUCommandEncoder {
    return this.#encoder ??= this.device.createCommandEncoder();
  }

  #computePass(): GPUComputePassEncoder {
    return this.#pass ??= this.#enc().beginComputePass();
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = null;
  }
}
