// The WebGPU backend: pooled storage buffers, a pipeline cache keyed by WGSL source, and command
// batching. Dispatches share one compute pass of one command encoder, which is submitted only at
// read points or every MAX_BATCH dispatches. Uniform blocks of a batch are staged in one CPU
// arena and written with a single writeBuffer just before the submit. Compilation and
// validation errors are captured per pipeline and thrown at the next read or sync.

import type { Backend, BoundArg, Kernel, Storage } from "../backend.ts";
import type { DType, TypedArray } from "../dtype.ts";
import { allocArray, byteSize } from "../dtype.ts";
import { BackendUnavailableError, DeviceError, ShaderCompileError } from "../errors.ts";
import { BufferPool, type PoolStats } from "./pool.ts";
import { acquireDevice, describeContext, type GpuContext } from "./device.ts";

const MAX_BATCH = 256; // dispatches per submit
const UNIFORM_ALIGN = 256;
const ARENA_BYTES = 64 * 1024;

/** WebGPU storage: a pooled buffer holding `size` elements. */
export class GpuStorage implements Storage {
  readonly backend = "webgpu";
  constructor(readonly buffer: GPUBuffer, readonly dtype: DType, readonly size: number) {}
  get bytes(): number {
    return this.size * byteSize(this.dtype);
  }
}

function gpuStorage(s: Storage): GpuStorage {
  if (!(s instanceof GpuStorage)) throw new Error(`webgpu backend given ${s.backend} storage`);
  return s;
}

interface Arena {
  buffer: GPUBuffer;
  staging: Uint8Array;
  used: number;
}

/** Counters of the backend, for tests and `--verbose`. */
export interface WebGpuStats extends PoolStats {
  dispatches: number;
  submits: number;
  pipelines: number;
}

/** Runs kernels' WGSL on a WebGPU device. */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  readonly pool: BufferPool;
  readonly device: GPUDevice;
  #pipelines = new Map<string, GPUComputePipeline>();
  #checks: Promise<void>[] = [];
  #error: Error | null = null;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #batched = 0;
  #arenas: Arena[] = [];
  #freeArenas: Arena[] = [];
  #counters = { dispatches: 0, submits: 0 };
  #afterSubmit: GPUBuffer[] = [];

  private constructor(readonly ctx: GpuContext) {
    this.device = ctx.device;
    this.pool = new BufferPool(ctx.device, ctx.limits.maxBufferSize);
    this.device.addEventListener("uncapturederror", (e) => {
      this.#error ??= new DeviceError(`webgpu: ${(e as GPUUncapturedErrorEvent).error.message}`);
    });
    this.device.lost.then((info) => {
      this.#error ??= new DeviceError(`webgpu: device lost (${info.reason}): ${info.message}`);
    });
  }

  /** Acquire the adapter and device. */
  static async create(): Promise<WebGpuBackend> {
    return new WebGpuBackend(await acquireDevice());
  }

  /** One line naming the adapter and its limits. */
  describe(): string {
    return describeContext(this.ctx);
  }

  /** Pool and dispatch counters. */
  stats(): WebGpuStats {
    return { ...this.pool.stats, ...this.#counters, pipelines: this.#pipelines.size };
  }

  alloc(size: number, dtype: DType): Storage {
    const bytes = size * byteSize(dtype);
    const limit = this.ctx.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new BackendUnavailableError(
        `webgpu: a tensor of ${size} ${dtype} elements needs ${bytes} bytes, over the adapter's ` +
          `maxStorageBufferBindingSize of ${limit} bytes by ${bytes - limit}; use a smaller ` +
          `shape or the cpu backend`,
      );
    }
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
    await staging.mapAsync(GPUMapMode.READ);
    new Uint8Array(out.buffer).set(new Uint8Array(staging.getMappedRange(), 0, out.byteLength));
    staging.unmap();
    staging.destroy();
    await this.#throwDeferred();
    return out;
  }

  free(storage: Storage): void {
    this.pool.release(gpuStorage(storage).buffer);
  }

  run<P>(kernel: Kernel<P>, inputs: BoundArg[], outputs: BoundArg[], params: P): void {
    if (!kernel.wgsl) throw new Error(`${kernel.name}: no WGSL kernel for the webgpu backend`);
    const launch = kernel.wgsl(
      inputs.map((a) => a.info),
      outputs.map((a) => a.info),
      params,
    );
    const pipeline = this.#pipeline(kernel.name, launch.source);
    const entries: GPUBindGroupEntry[] = [...inputs, ...outputs].map((a, i) => ({
      binding: i,
      resource: { buffer: gpuStorage(a.storage).buffer },
    }));
    if (launch.uniforms) {
      entries.push({ binding: entries.length, resource: this.#uniform(launch.uniforms) });
    }
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    const pass = this.#computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...launch.grid);
    this.#counters.dispatches++;
    if (++this.#batched >= MAX_BATCH) this.flush();
  }

  /** Submit recorded work without waiting for it. */
  flush(): void {
    if (!this.#encoder) return;
    this.#endPass();
    for (const a of this.#arenas) {
      if (a.used > 0) this.device.queue.writeBuffer(a.buffer, 0, a.staging, 0, a.used);
    }
    this.device.queue.submit([this.#encoder.finish()]);
    this.#counters.submits++;
    for (const b of this.#afterSubmit) b.destroy();
    this.#afterSubmit = [];
    this.#encoder = null;
    this.#batched = 0;
    for (const a of this.#arenas) a.used = 0;
    this.#freeArenas.push(...this.#arenas);
    this.#arenas = [];
  }

  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
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
          this.#error ??= new ShaderCompileError(name, msgs.join("; ") || err!.message, source);
        }
      }),
    );
    this.#pipelines.set(source, pipeline);
    return pipeline;
  }

  #uniform(data: ArrayBufferView): GPUBufferBinding {
    const size = data.byteLength;
    const need = Math.ceil(size / UNIFORM_ALIGN) * UNIFORM_ALIGN;
    let arena = this.#arenas[this.#arenas.length - 1];
    if (!arena || arena.used + need > ARENA_BYTES) {
      arena = this.#freeArenas.pop() ?? {
        buffer: this.device.createBuffer({
          size: ARENA_BYTES,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        }),
        staging: new Uint8Array(ARENA_BYTES),
        used: 0,
      };
      this.#arenas.push(arena);
    }
    const offset = arena.used;
    arena.staging.set(new Uint8Array(data.buffer, data.byteOffset, size), offset);
    arena.used += need;
    return { buffer: arena.buffer, offset, size: Math.ceil(size / 16) * 16 };
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
