// Bind-group reuse for the WebGPU backend. Uniform blocks are content-addressed: identical
// blocks (the same op on the same shapes, as in every step of a training loop) share one
// 256-byte-aligned slot of a persistent uniform buffer, written once with queue.writeBuffer.
// Bind groups are then cached by pipeline, storage buffer ranges and uniform slot; pooled buffers are
// recycled, so a steady-state step finds all of its bind groups here and creates none
// (createBindGroup was about a fifth of the CPU time of a small dispatch on llvmpipe; with the
// cache a 64-element op costs ~25 µs of CPU instead of ~37 µs). Both caches are bounded: when
// full they are emptied, after the owner flushes, so no pending work reads a reused slot.

const ALIGN = 256; // minUniformBufferOffsetAlignment's default
const CHUNK = 64 * 1024; // one uniform buffer (maxUniformBufferBindingSize's default)
const MAX_CHUNKS = 64; // 4 MiB of uniform blocks
const MAX_GROUPS = 8192;

/** What a kernel binds: a range of a storage buffer, or a staged texture's view. */
export type Resource = Required<GPUBufferBinding> | GPUTextureView;

/** A uniform block's place in the store. */
export interface UniformSlot {
  id: number;
  binding: GPUBufferBinding;
}

/** Counters for tests and benchmarks. */
export interface BindingStats {
  bindGroups: number;
  bindGroupHits: number;
  uniformSlots: number;
}

/** Caches of uniform slots and bind groups for one device. */
export class BindingCache {
  readonly stats: BindingStats = { bindGroups: 0, bindGroupHits: 0, uniformSlots: 0 };
  #ids = new WeakMap<object, number>();
  #nextId = 1;
  #chunks: GPUBuffer[] = [];
  #chunk = 0; // the chunk being filled
  #used = 0; // bytes used in it
  #cleared = 0; // slots dropped by clear()
  #slots = new Map<string, UniformSlot>();
  #groups = new Map<string, GPUBindGroup>();

  /** `flush` submits the owner's pending work (called before a full cache is emptied). */
  constructor(readonly device: GPUDevice, readonly flush: () => void) {}

  /** A small stable integer naming a GPU object (pipeline or buffer). */
  id(o: object): number {
    let id = this.#ids.get(o);
    if (id === undefined) {
      id = this.#nextId++;
      this.#ids.set(o, id);
    }
    return id;
  }

  /** The slot holding `data` (written to the device the first time these bytes are seen). */
  uniform(data: ArrayBufferView): UniformSlot {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength > CHUNK) {
      throw new RangeError(`webgpu: a uniform block of ${bytes.byteLength} bytes is over ${CHUNK}`);
    }
    const key = contentKey(bytes);
    const hit = this.#slots.get(key);
    if (hit) return hit;
    const size = Math.ceil(bytes.byteLength / 16) * 16;
    if (this.#used + size > CHUNK) {
      this.#chunk++;
      this.#used = 0;
      if (this.#chunk >= MAX_CHUNKS) this.clear();
    }
    this.#chunks[this.#chunk] ??= this.device.createBuffer({
      size: CHUNK,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const buffer = this.#chunks[this.#chunk];
    const offset = this.#used;
    this.#used += Math.ceil(size / ALIGN) * ALIGN;
    const padded = new Uint8Array(size);
    padded.set(bytes);
    this.device.queue.writeBuffer(buffer, offset, padded);
    const slot = { id: this.#slots.size + 1 + this.#cleared, binding: { buffer, offset, size } };
    this.#slots.set(key, slot);
    this.stats.uniformSlots = this.#slots.size;
    return slot;
  }

  /**
   * The bind group of `pipeline` over `resources` (bindings 0..n-1: storage buffers, or the
   * views of staged textures) and an optional uniform after them.
   */
  bindGroup(pipeline: GPUComputePipeline, resources: Resource[], uniform?: UniformSlot) {
    let key = `${this.id(pipeline)}|${uniform?.id ?? 0}`;
    for (const r of resources) {
      key += r instanceof GPUTextureView
        ? `|${this.id(r)}`
        : `|${this.id(r.buffer)}:${r.offset}:${r.size}`;
    }
    const hit = this.#groups.get(key);
    if (hit) {
      this.stats.bindGroupHits++;
      return hit;
    }
    if (this.#groups.size >= MAX_GROUPS) this.#groups.clear();
    const entries: GPUBindGroupEntry[] = resources.map((r, i) => ({
      binding: i,
      resource: r,
    }));
    if (uniform) entries.push({ binding: resources.length, resource: uniform.binding });
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.#groups.set(key, group);
    this.stats.bindGroups++;
    return group;
  }

  /** Forget every bind group (call when buffers are destroyed). */
  forgetGroups(): void {
    this.#groups.clear();
  }

  /** Empty both caches, after submitting pending work that may read the old slots. */
  clear(): void {
    this.flush();
    this.#cleared += this.#slots.size; // slot ids stay unique across clears
    this.#slots.clear();
    this.#groups.clear();
    this.#chunk = 0;
    this.#used = 0;
    this.stats.uniformSlots = 0;
  }
}

/** The bytes of a uniform block as a string key: its length, then two bytes per char. */
function contentKey(bytes: Uint8Array): string {
  const even = bytes.byteLength & ~1;
  const u16 = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + even));
  let key = `${bytes.byteLength}:${String.fromCharCode(...u16)}`;
  if (even < bytes.byteLength) key += String.fromCharCode(bytes[even]);
  return key;
}
