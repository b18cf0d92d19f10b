// Buffer pool by size class. Classes are 256 bytes and up in quarter-power-of-two steps
// (2^k · {1, 1.25, 1.5, 1.75}), so a reused buffer wastes under 25%. Freed buffers go back to
// their class's free list at once: work already encoded that reads them runs before any later
// dispatch that writes them, because WebGPU orders dispatches on one queue.

/** Counters exposed for tests and `--verbose`. */
export interface PoolStats {
  /** Bytes held by live tensors (by size class). */
  liveBytes: number;
  /** The most `liveBytes` has been since the pool was made or `resetPeak()` was called. */
  peakLiveBytes: number;
  /** The most live plus pooled bytes (all buffers the pool held) over the same span. */
  peakHeldBytes: number;
  /** Bytes sitting in free lists. */
  pooledBytes: number;
  /** Buffers created. */
  allocations: number;
  /** Requests served from a free list. */
  reuses: number;
  /** Live buffers. */
  liveBuffers: number;
}

/** The size class that holds `bytes`. */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const k = Math.floor(Math.log2(bytes));
  const base = 2 ** k;
  for (const q of [1, 1.25, 1.5, 1.75, 2]) {
    if (base * q >= bytes) return base * q;
  }
  return base * 2;
}

/** Storage buffers recycled by size class. */
export class BufferPool {
  readonly stats: PoolStats = {
    liveBytes: 0,
    peakLiveBytes: 0,
    peakHeldBytes: 0,
    pooledBytes: 0,
    allocations: 0,
    reuses: 0,
    liveBuffers: 0,
  };
  #free = new Map<number, GPUBuffer[]>();

  constructor(readonly device: GPUDevice, readonly maxBufferSize: number) {}

  /** A buffer of at least `bytes` (its size is the class size). */
  acquire(bytes: number): GPUBuffer {
    let cls = sizeClass(bytes);
    if (cls > this.maxBufferSize) cls = Math.ceil(bytes / 4) * 4; // no headroom at the limit
    const list = this.#free.get(cls);
    let buf = list?.pop();
    if (buf) {
      this.stats.reuses++;
      this.stats.pooledBytes -= cls;
    } else {
      buf = this.device.createBuffer({
        size: cls,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.stats.allocations++;
    }
    const s = this.stats;
    s.liveBytes += cls;
    s.liveBuffers++;
    s.peakLiveBytes = Math.max(s.peakLiveBytes, s.liveBytes);
    s.peakHeldBytes = Math.max(s.peakHeldBytes, s.liveBytes + s.pooledBytes);
    return buf;
  }

  /** Start measuring `peakLiveBytes` and `peakHeldBytes` again from now. */
  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
    this.stats.peakHeldBytes = this.stats.liveBytes + this.stats.pooledBytes;
  }

  /** Return a buffer from `acquire` to its free list. */
  release(buf: GPUBuffer): void {
    const cls = buf.size;
    this.stats.liveBytes -= cls;
    this.stats.liveBuffers--;
    this.stats.pooledBytes += cls;
    const list = this.#free.get(cls);
    if (list) list.push(buf);
    else this.#free.set(cls, [buf]);
  }

  /** Destroy every pooled (free) buffer. */
  trim(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#free.clear();
    this.stats.pooledBytes = 0;
  }
}
