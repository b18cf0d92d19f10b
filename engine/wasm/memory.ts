// The wasm backend's heap: one WebAssembly.Memory (shared when threads are available, so every
// worker sees the same bytes; maximum 65,536 pages = wasm32's 4 GiB) and a pooled allocator
// over it. Blocks are 64-byte aligned (a cache line; any SIMD load is aligned) and rounded up
// to size classes (64 bytes, then four classes per power of two: at most 25% slack); a freed
// block goes on its class's free list and is reused by the next allocation of that class, and
// blocks freed at the top of the heap give their bytes back to the bump pointer. The memory
// grows on demand and never shrinks (wasm memories cannot). Past 4 GiB an allocation throws a
// WasmHeapError naming the tensor, its bytes and the limit.
// Views: `memory.buffer` is replaced when the memory grows (a non-shared one's old buffer is
// detached), so the view helpers fetch it on every call; do not keep a view across an alloc.

import { DeviceLimitError } from "../errors.ts";

/** Bytes in a wasm page. */
export const PAGE_BYTES = 65536;
/** wasm32's address space: 65,536 pages, 4 GiB. */
export const WASM32_MAX_BYTES = 2 ** 32;
/** Alignment of every block (and the smallest size class). */
export const BLOCK_ALIGN = 64;

/** An allocation the wasm heap cannot satisfy (over wasm32's 4 GiB, or the host refused). */
export class WasmHeapError extends DeviceLimitError {
  /** Always "WasmHeapError". */
  override name = "WasmHeapError";
}

/** Options of a heap. */
export interface HeapOptions {
  /** A shared memory (needed by the thread pool); default true where SharedArrayBuffer exists. */
  shared?: boolean;
  /** Bytes to start with (default 16 MiB). */
  initialBytes?: number;
  /** Largest heap in bytes (default and at most 4 GiB); tests use small limits. */
  maxBytes?: number;
}

/** Allocation counters. */
export interface HeapStats {
  /** Bytes in live blocks (size classes). */
  inUse: number;
  /** Bytes in free lists, waiting for reuse. */
  pooled: number;
  /** Highest `inUse` so far. */
  peak: number;
  /** The memory's current size. */
  heapBytes: number;
}

/** The size class of a request: 64-byte multiples, then 4 classes per power of two. */
export function sizeClass(bytes: number): number {
  if (bytes <= BLOCK_ALIGN) return BLOCK_ALIGN;
  const step = Math.max(BLOCK_ALIGN, 2 ** (Math.ceil(Math.log2(bytes)) - 3));
  return Math.ceil(bytes / step) * step;
}

const fmtBytes = (n: number) =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;

/** One linear memory and its pooled allocator. */
export class WasmHeap {
  /** The memory every kernel module imports. */
  readonly memory: WebAssembly.Memory;
  /** Whether it is a shared memory (workers can use it). */
  readonly shared: boolean;
  /** Largest size in bytes. */
  readonly maxBytes: number;
  readonly #free = new Map<number, number[]>(); // class size -> free block addresses
  readonly #size = new Map<number, number>(); // block address -> class size (live or free)
  readonly #freeEnd = new Map<number, number>(); // end address -> start, of free blocks
  #top = BLOCK_ALIGN; // bump pointer; [0, 64) stays unused so no block has address 0
  #inUse = 0;
  #pooled = 0;
  #peak = 0;

  constructor(
    { shared = typeof SharedArrayBuffer !== "undefined", initialBytes = 16 << 20, maxBytes }:
      HeapOptions = {},
  ) {
    this.maxBytes = Math.min(maxBytes ?? WASM32_MAX_BYTES, WASM32_MAX_BYTES);
    const maximum = Math.floor(this.maxBytes / PAGE_BYTES);
    const initial = Math.min(maximum, Math.max(1, Math.ceil(initialBytes / PAGE_BYTES)));
    this.memory = new WebAssembly.Memory({ initial, maximum, shared });
    this.shared = shared;
  }

  /** The memory's current bytes (re-fetched: growing replaces it). */
  get buffer(): ArrayBufferLike {
    return this.memory.buffer;
  }

  /**
   * A 64-byte aligned block of at least `bytes`; `label` names it in errors (e.g. the tensor).
   * Contents are unspecified (a reused block keeps its old bytes).
   */
  alloc(bytes: number, label = "a block"): number {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) {
      throw new RangeError(`wasm heap: cannot allocate ${bytes} bytes for ${label}`);
    }
    const size = sizeClass(bytes);
    const list = this.#free.get(size);
    let ptr = list?.pop();
    if (ptr !== undefined) {
      this.#freeEnd.delete(ptr + size);
      this.#pooled -= size;
    } else {
      if (this.#top + size > this.maxBytes) {
        throw new WasmHeapError(
          `wasm heap: cannot allocate ${label} (${bytes} bytes): the heap would need ` +
            `${this.#top + size} bytes, over its limit of ${this.maxBytes} bytes ` +
            `(${fmtBytes(this.maxBytes)}, wasm32's address space is 4 GiB); ` +
            `${this.#inUse} bytes are in use and ${this.#pooled} pooled`,
        );
      }
      this.#ensure(this.#top + size, label, bytes);
      ptr = this.#top;
      this.#top += size;
      this.#size.set(ptr, size);
    }
    this.#inUse += size;
    this.#peak = Math.max(this.#peak, this.#inUse);
    return ptr;
  }

  /** Return a block to its pool. */
  free(ptr: number): void {
    const size = this.#size.get(ptr);
    if (size === undefined || this.#freeEnd.get(ptr + size) === ptr) {
      throw new Error(`wasm heap: free of ${ptr}, which is not a live block`);
    }
    this.#inUse -= size;
    if (ptr + size === this.#top) {
      this.#size.delete(ptr);
      this.#top = ptr;
      this.#releaseTop();
      return;
    }
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(ptr);
    this.#freeEnd.set(ptr + size, ptr);
    this.#pooled += size;
  }

  /** Bytes reserved for a live block (its size class). */
  sizeOf(ptr: number): number {
    const size = this.#size.get(ptr);
    if (size === undefined) throw new Error(`wasm heap: ${ptr} is not a block`);
    return size;
  }

  /** Allocation counters. */
  stats(): HeapStats {
    const heapBytes = this.memory.buffer.byteLength;
    return { inUse: this.#inUse, pooled: this.#pooled, peak: this.#peak, heapBytes };
  }

  /** Free blocks that end at the top go back to the bump pointer. */
  #releaseTop(): void {
    for (let start = this.#freeEnd.get(this.#top); start !== undefined;) {
      const size = this.#top - start;
      const list = this.#free.get(size)!;
      list.splice(list.lastIndexOf(start), 1);
      this.#freeEnd.delete(this.#top);
      this.#size.delete(start);
      this.#pooled -= size;
      this.#top = start;
      start = this.#freeEnd.get(this.#top);
    }
  }

  /** Grow the memory to hold `end` bytes (geometrically, within maxBytes). */
  #ensure(end: number, label: string, bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const want = Math.min(this.maxBytes, Math.max(end, Math.floor(have * 1.5)));
    const pages = Math.ceil(want / PAGE_BYTES) - have / PAGE_BYTES;
    try {
      this.memory.grow(pages);
    } catch (e) {
      throw new WasmHeapError(
        `wasm heap: cannot allocate ${label} (${bytes} bytes): growing the memory from ` +
          `${have} to ${have + pages * PAGE_BYTES} bytes failed (${(e as Error).message})`,
      );
    }
  }

  /** A Uint8Array over [ptr, ptr + n). */
  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, n);
  }

  /** An Int32Array of n elements at ptr (4-byte aligned). */
  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, n);
  }

  /** A Uint32Array of n elements at ptr. */
  u32(ptr: number, n: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, ptr, n);
  }

  /** A Float32Array of n elements at ptr. */
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }

  /** A Float64Array of n elements at ptr (8-byte aligned). */
  f64(ptr: number, n: number): Float64Array {
    return new Float64Array(this.memory.buffer, ptr, n);
  }
}
