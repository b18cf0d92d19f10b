// GPU timestamps around compute passes (the device's "timestamp-query" feature): a query set of
// two slots per timed pass, resolved and copied to a mappable buffer at the end of the command
// encoder, read back after the submit. The autotuner times its candidates with it, the profiler
// every dispatch. Times are the device's nanoseconds (their origin is the device's own).

/** Begin/end timestamps of up to `passes` compute passes recorded in one command encoder. */
export class TimestampBatch {
  readonly #querySet: GPUQuerySet;
  readonly #resolve: GPUBuffer;
  readonly #read: GPUBuffer;
  #used = 0;

  /** Room for `passes` timed passes on `device` (which must have "timestamp-query"). */
  constructor(readonly device: GPUDevice, readonly passes: number) {
    const count = 2 * passes;
    this.#querySet = device.createQuerySet({ type: "timestamp", count });
    this.#resolve = device.createBuffer({
      size: 8 * count,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.#read = device.createBuffer({
      size: 8 * count,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Timed passes recorded so far (the slots handed out). */
  get used(): number {
    return this.#used;
  }

  /** Is every slot handed out? */
  get full(): boolean {
    return this.#used >= this.passes;
  }

  /**
   * The timestampWrites of pass `i`: its beginning, its end, or both (a pass whose start is
   * stamped by an earlier, empty pass takes only `end`).
   */
  writes(i: number, which: "both" | "begin" | "end" = "both"): GPUComputePassTimestampWrites {
    this.#used = Math.max(this.#used, i + 1);
    const w: GPUComputePassTimestampWrites = { querySet: this.#querySet };
    if (which !== "end") w.beginningOfPassWriteIndex = 2 * i;
    if (which !== "begin") w.endOfPassWriteIndex = 2 * i + 1;
    return w;
  }

  /** The next free pass slot's writes (both ends). */
  next(): GPUComputePassTimestampWrites {
    return this.writes(this.#used);
  }

  /** Record the resolve and the copy to the mappable buffer: last in `enc`, before finish(). */
  resolve(enc: GPUCommandEncoder): void {
    const count = 2 * Math.max(1, this.#used);
    enc.resolveQuerySet(this.#querySet, 0, count, this.#resolve, 0);
    enc.copyBufferToBuffer(this.#resolve, 0, this.#read, 0, 8 * count);
  }

  /**
   * After the encoder is submitted: [begin, end] device nanoseconds of each recorded pass (as
   * pairs, 2·used values); frees the GPU objects.
   */
  async read(): Promise<BigInt64Array> {
    try {
      await this.#read.mapAsync(GPUMapMode.READ);
      const ts = new BigInt64Array(this.#read.getMappedRange().slice(0, 16 * this.#used));
      this.#read.unmap();
      return ts;
    } finally {
      this.destroy();
    }
  }

  /** Free the query set and buffers (read() does it itself). */
  destroy(): void {
    this.#resolve.destroy();
    this.#read.destroy();
    this.#querySet.destroy();
  }
}

/** Milliseconds between the begin and end stamps of pass `i` in `ts`. */
export function passMs(ts: BigInt64Array, i: number): number {
  return Number(ts[2 * i + 1] - ts[2 * i]) / 1e6;
}
