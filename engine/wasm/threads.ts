// Worker threads over the shared heap, for synchronous kernels: the calling thread writes a job
// (module, function, arguments) into a control block in shared memory, wakes the workers it
// picked with Atomics.notify, runs its own share (tid 0), then waits until all are done. Each
// participant calls `fn(tid, n, ...args)`; kernels split work by tid so that every output is
// computed by one thread in the same order, whatever n is (results do not depend on it).
//
// Modules compiled after the workers started: a worker blocked in Atomics.wait cannot receive
// postMessage, so a module's bytes are copied into the heap and listed in a module table in the
// control block; a worker that meets a module id it has not seen compiles and instantiates it
// synchronously (a worker may compile any size synchronously) and caches the instance.
//
// Waking: each worker has its own wake word (a cache line apart), so only the job's participants
// wake. A participant's share is ASSIGNED in its slot and the worker claims it (RUNNING) with a
// compare-exchange; when the caller has finished its own share, it takes back every share not
// yet claimed and runs it itself (same tid, same bytes), so a worker that is asleep or not
// scheduled (a shared machine, a busy browser) costs at most the serial time, not a scheduler
// tick or more. Claims decide participation, so a late wake-up can never misread a job. After a job a worker spins on its word for
// `spinUs` (a wake from Atomics.wait costs 30-50 µs here, a spinning worker answers in < 1 µs)
// and then blocks; the caller spins likewise, then blocks in Atomics.wait where it may (a
// browser's main thread may not: it spins).
//
// Each start of the workers is an epoch; a worker serves only its own (a slow one left from a
// park can never answer a later epoch's wake-up).
// Lifetime: Workers keep a Deno process alive and Deno's Workers have no unref, so an idle pool
// parks: `idleMs` after the last job its workers exit. The next job runs on the calling thread
// alone while new workers start (they come online by themselves; no event-loop turn is needed),
// which is correct because results do not depend on the thread count. `dispose()` parks at once.
// The worker source is a Blob URL module, so the pool bundles into one file and needs no path.

import type { WasmHeap } from "./memory.ts";

// Control block: i32 words at the start, then arguments, module table, error text, worker slots.
const EPOCH = 0; // bumped when the workers are told to exit; a worker serves one epoch
const PENDING = 1; // participants still running
const MODULE = 2;
const FUNC = 3;
const NTHREADS = 4;
const NARGS = 5;
const ERROR = 6; // tid + 1 of the first thread that threw, 0 if none
const ERROR_LEN = 7;
const ARGS_BYTE = 64; // f64 × MAX_ARGS
/** Most arguments a kernel function takes after (tid, n). */
export const MAX_ARGS = 24;
const TABLE_BYTE = ARGS_BYTE + 8 * MAX_ARGS; // (ptr, len) i32 pairs
/** Most kernel modules a pool holds. */
export const MAX_MODULES = 1024;
const ERROR_BYTE = TABLE_BYTE + 8 * MAX_MODULES;
const ERROR_BYTES = 2048;
const SLOTS_BYTE = ERROR_BYTE + ERROR_BYTES; // per worker, 64 bytes (a cache line):
const SLOT_BYTES = 64;
const WAKE = 0; // bumped to wake the worker
const TID = 1; // its tid in the job
const ONLINE = 2; // the epoch it serves, 0 when gone
const STATE = 3; // IDLE, ASSIGNED (by the caller), RUNNING (claimed by the worker)
const [IDLE, ASSIGNED, RUNNING] = [0, 1, 2];

/** Options of a thread pool. */
export interface PoolOptions {
  /** Threads including the calling one (default navigator.hardwareConcurrency). */
  threads?: number;
  /** µs a thread spins for the next job (or the end of one) before it blocks (default 200). */
  spinUs?: number;
  /** ms without jobs after which the workers exit (default 1000; Infinity: never). */
  idleMs?: number;
  /** The calling thread may block in Atomics.wait (default: probe). */
  canBlock?: boolean;
}

/** A compiled kernel module: its id in the pool and the calling thread's exports. */
export interface PoolModule {
  /** Index in the module table. */
  readonly id: number;
  /** Exported function names, in export order (the index workers call by). */
  readonly names: readonly string[];
  /** The calling thread's instance's functions, in the same order. */
  readonly fns: readonly ((...args: number[]) => unknown)[];
}

/** A kernel threw on some thread; the message names the thread and the function. */
export class WasmThreadError extends Error {
  /** Always "WasmThreadError". */
  override name = "WasmThreadError";
}

function workerSource(): string {
  // Plain JavaScript: it runs as a Blob module in the worker, untouched by the bundler.
  return `
const SLOTS_BYTE = ${SLOTS_BYTE}, SLOT_BYTES = ${SLOT_BYTES}, ARGS_BYTE = ${ARGS_BYTE};
const WAKE = ${WAKE}, TID = ${TID}, ONLINE = ${ONLINE}, STATE = ${STATE};
const TABLE_BYTE = ${TABLE_BYTE}, ERROR_BYTE = ${ERROR_BYTE}, ERROR_BYTES = ${ERROR_BYTES};
self.onmessage = (e) => {
  self.onmessage = null;
  const { memory, base, index, epoch, spinUs } = e.data;
  const ctl = new Int32Array(memory.buffer, base, SLOTS_BYTE / 4);
  const args = new Float64Array(memory.buffer, base + ARGS_BYTE, ${MAX_ARGS});
  const slot = new Int32Array(memory.buffer, base + SLOTS_BYTE + index * SLOT_BYTES, 4);
  const modules = [];
  const fnsOf = (id) => {
    if (modules[id]) return modules[id];
    const t = new Int32Array(memory.buffer, base + TABLE_BYTE + 8 * id, 2);
    const bytes = new Uint8Array(memory.buffer, t[0], t[1]).slice();
    const mod = new WebAssembly.Module(bytes);
    const inst = new WebAssembly.Instance(mod, { env: { memory } });
    return modules[id] = WebAssembly.Module.exports(mod).map((x) => inst.exports[x.name]);
  };
  const report = (tid, err) => {
    if (Atomics.compareExchange(ctl, ${ERROR}, 0, tid + 1) !== 0) return;
    const text = new TextEncoder().encode(String(err && err.stack || err));
    const n = Math.min(text.length, ERROR_BYTES);
    new Uint8Array(memory.buffer, base + ERROR_BYTE, n).set(text.subarray(0, n));
    ctl[${ERROR_LEN}] = n;
  };
  let seen = Atomics.load(slot, WAKE);
  Atomics.store(slot, ONLINE, epoch);
  for (;;) {
    const until = performance.now() + spinUs / 1000;
    for (let i = 1; Atomics.load(slot, WAKE) === seen; i++) {
      if ((i & 1023) === 0 && performance.now() > until) Atomics.wait(slot, WAKE, seen);
    }
    seen = Atomics.load(slot, WAKE);
    if (Atomics.load(ctl, ${EPOCH}) !== epoch) break;
    try {
      fnsOf(ctl[${MODULE}]); // compile a new module before claiming the share
    } catch { /* reported below if this job needs it */ }
    // Claim the share; if the caller already took it back (we were late), skip this job.
    if (Atomics.compareExchange(slot, STATE, ${ASSIGNED}, ${RUNNING}) !== ${ASSIGNED}) continue;
    const tid = slot[TID];
    try {
      const fn = fnsOf(ctl[${MODULE}])[ctl[${FUNC}]];
      fn(tid, ctl[${NTHREADS}], ...args.subarray(0, ctl[${NARGS}]));
    } catch (err) {
      report(tid, err);
    }
    Atomics.store(slot, STATE, ${IDLE});
    if (Atomics.sub(ctl, ${PENDING}, 1) === 1) Atomics.notify(ctl, ${PENDING});
  }
  Atomics.compareExchange(slot, ONLINE, epoch, 0);
  self.close();
};
`;
}

let warned = false;

/** The worker pool (or, without shared memory or with threads = 1, the calling thread alone). */
export class ThreadPool {
  /** Threads a job may use, the calling one included. */
  readonly threads: number;
  /** Why the pool runs on one thread although more were asked for ("" otherwise). */
  readonly singleWhy: string;
  readonly #heap: WasmHeap;
  readonly #base: number;
  readonly #spinUs: number;
  readonly #idleMs: number;
  readonly #canBlock: boolean;
  readonly #modules: PoolModule[] = [];
  #workers: Worker[] = [];
  #url = "";
  #lastJob = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #disposed = false;
  #takenBack = 0;

  constructor(heap: WasmHeap, opts: PoolOptions = {}) {
    const asked = Math.max(1, Math.floor(opts.threads ?? navigator.hardwareConcurrency ?? 1));
    this.singleWhy = asked === 1
      ? ""
      : !heap.shared
      ? "the heap is not a shared memory"
      : typeof Worker === "undefined"
      ? "Workers are unavailable"
      : "";
    this.threads = this.singleWhy ? 1 : asked;
    if (this.singleWhy && !warned) {
      warned = true;
      console.warn(`wasm: running on one thread instead of ${asked}: ${this.singleWhy}`);
    }
    this.#heap = heap;
    this.#spinUs = opts.spinUs ?? 200;
    this.#idleMs = opts.idleMs ?? 1000;
    this.#canBlock = opts.canBlock ?? canBlockHere();
    this.#base = heap.alloc(SLOTS_BYTE + SLOT_BYTES * this.threads, "the thread control block");
    heap.u8(this.#base, SLOTS_BYTE + SLOT_BYTES * this.threads).fill(0);
  }

  /** A pool whose workers are all online. */
  static async create(heap: WasmHeap, opts: PoolOptions = {}): Promise<ThreadPool> {
    const pool = new ThreadPool(heap, opts);
    pool.#spawn();
    await pool.ready();
    return pool;
  }

  /**
   * Resolves when every worker is online (workers start after a park as well), or after
   * `timeoutMs` with a warning: jobs then use the workers that did come online.
   */
  async ready(timeoutMs = 10_000): Promise<void> {
    if (this.threads > 1 && this.#workers.length === 0) this.#spawn();
    const until = performance.now() + timeoutMs;
    while (this.#online().length < this.#workers.length) {
      if (performance.now() > until) {
        console.warn(
          `wasm: ${this.#online().length} of ${this.#workers.length} worker threads started ` +
            `within ${timeoutMs} ms; running with those`,
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Workers online now (their indices). */
  #online(): number[] {
    const out: number[] = [];
    const epoch = Atomics.load(this.#ctl(), EPOCH);
    for (let w = 0; w < this.#workers.length; w++) {
      if (Atomics.load(this.#slot(w), ONLINE) === epoch) out.push(w);
    }
    return out;
  }

  #ctl(): Int32Array {
    return this.#heap.i32(this.#base, SLOTS_BYTE / 4);
  }

  #slot(w: number): Int32Array {
    return this.#heap.i32(this.#base + SLOTS_BYTE + w * SLOT_BYTES, 4);
  }

  #spawn(): void {
    if (this.#disposed || this.threads === 1) return;
    this.#url ||= URL.createObjectURL(new Blob([workerSource()], { type: "text/javascript" }));
    const epoch = Atomics.add(this.#ctl(), EPOCH, 1) + 1;
    for (let w = 0; w < this.threads - 1; w++) {
      const worker = new Worker(this.#url, { type: "module", name: `wasm-thread-${w + 1}` });
      worker.postMessage({
        memory: this.#heap.memory,
        base: this.#base,
        index: w,
        epoch,
        spinUs: this.#spinUs,
      });
      this.#workers.push(worker);
    }
    this.#touch(); // a pool that never runs a job parks too
  }

  /**
   * Add a module: instantiate it on this thread now (compiling `bytes` unless `compiled` is
   * given) and on each worker when it first runs it.
   */
  register(bytes: Uint8Array<ArrayBuffer>, compiled?: WebAssembly.Module): PoolModule {
    const id = this.#modules.length;
    if (id >= MAX_MODULES) throw new Error(`wasm: more than ${MAX_MODULES} kernel modules`);
    const mod = compiled ?? new WebAssembly.Module(bytes);
    const inst = new WebAssembly.Instance(mod, { env: { memory: this.#heap.memory } });
    const names = WebAssembly.Module.exports(mod).filter((e) => e.kind === "function")
      .map((e) => e.name);
    const fns = names.map((n) => inst.exports[n] as (...args: number[]) => unknown);
    if (this.threads > 1) {
      const ptr = this.#heap.alloc(bytes.length, "a kernel module's bytes");
      this.#heap.u8(ptr, bytes.length).set(bytes);
      this.#heap.i32(this.#base + TABLE_BYTE + 8 * id, 2).set([ptr, bytes.length]);
    }
    const m = { id, names, fns };
    this.#modules.push(m);
    return m;
  }

  /**
   * Run export `fn` of `mod` as fn(tid, n, ...args) on n threads (at most `parallel`, and only
   * workers online now), the calling thread as tid 0; returns when all are done.
   */
  run(mod: PoolModule, fn: number, args: readonly number[], parallel = this.threads): void {
    if (args.length > MAX_ARGS) throw new Error(`wasm: more than ${MAX_ARGS} kernel arguments`);
    const f = mod.fns[fn];
    const want = Math.min(parallel, this.threads) - 1;
    if (want <= 0 || this.#disposed) {
      f(0, 1, ...args);
      return;
    }
    if (this.#workers.length === 0) this.#spawn();
    const helpers = this.#online().slice(0, want);
    const n = helpers.length + 1;
    if (n === 1) {
      f(0, 1, ...args);
      return;
    }
    const ctl = this.#ctl();
    ctl[MODULE] = mod.id;
    ctl[FUNC] = fn;
    ctl[NTHREADS] = n;
    ctl[NARGS] = args.length;
    this.#heap.f64(this.#base + ARGS_BYTE, MAX_ARGS).set(args);
    Atomics.store(ctl, PENDING, n - 1);
    helpers.forEach((w, i) => {
      const slot = this.#slot(w);
      slot[TID] = i + 1;
      Atomics.store(slot, STATE, ASSIGNED);
      Atomics.add(slot, WAKE, 1);
      Atomics.notify(slot, WAKE);
    });
    let mine: unknown = null;
    const share = (tid: number) => {
      try {
        f(tid, n, ...args);
      } catch (e) {
        mine ??= tid === 0 ? e : new WasmThreadError(
          `wasm: ${mod.names[fn]} failed on thread ${tid} (run by the caller): ${e}`,
        );
      }
    };
    share(0);
    // A helper that has not started by now is asleep or descheduled: take its share back and
    // run it here (same tid, same bytes) rather than wait for it to be scheduled.
    helpers.forEach((w, i) => {
      if (Atomics.compareExchange(this.#slot(w), STATE, ASSIGNED, IDLE) === ASSIGNED) {
        this.#takenBack++;
        share(i + 1);
        Atomics.sub(ctl, PENDING, 1);
      }
    });
    this.#join(ctl);
    this.#touch();
    const failed = ctl[ERROR];
    ctl[ERROR] = 0;
    if (mine) throw mine;
    if (failed !== 0) {
      const text = new TextDecoder().decode(this.#heap.u8(this.#base + ERROR_BYTE, ctl[ERROR_LEN]));
      throw new WasmThreadError(`wasm: ${mod.names[fn]} failed on thread ${failed - 1}: ${text}`);
    }
  }

  #join(ctl: Int32Array): void {
    const until = performance.now() + this.#spinUs / 1000;
    for (let i = 1;; i++) {
      const left = Atomics.load(ctl, PENDING);
      if (left === 0) return;
      if ((i & 1023) === 0 && this.#canBlock && performance.now() > until) {
        Atomics.wait(ctl, PENDING, left, 1000);
      }
    }
  }

  /** Note a job; arm the idle timer that parks the workers. */
  #touch(): void {
    this.#lastJob = performance.now();
    if (this.#timer !== undefined || !Number.isFinite(this.#idleMs)) return;
    const check = () => {
      const idle = performance.now() - this.#lastJob;
      if (idle >= this.#idleMs) {
        this.#timer = undefined;
        this.park();
      } else {
        this.#timer = setTimeout(check, this.#idleMs - idle);
      }
    };
    this.#timer = setTimeout(check, this.#idleMs);
  }

  /** Let the workers exit (the next job starts new ones). */
  park(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#workers.length === 0) return;
    Atomics.add(this.#ctl(), EPOCH, 1);
    for (let w = 0; w < this.#workers.length; w++) {
      const slot = this.#slot(w);
      Atomics.add(slot, WAKE, 1);
      Atomics.notify(slot, WAKE);
    }
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
  }

  /** Stop the workers for good; later jobs run on the calling thread. */
  dispose(): void {
    this.park();
    this.#disposed = true;
    if (this.#url) URL.revokeObjectURL(this.#url);
    this.#url = "";
  }

  /** Shares the caller took back from workers that had not started them (since creation). */
  get takenBack(): number {
    return this.#takenBack;
  }

  /** Workers running now (0 when parked). */
  get workers(): number {
    return this.#workers.length;
  }
}

/** May this thread block in Atomics.wait? (Not a browser's main thread.) */
function canBlockHere(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}
