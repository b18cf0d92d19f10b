// The worker pool: modules compiled after the workers started run on every thread, errors on a
// worker reach the caller with the thread named, an idle pool parks and comes back, and without
// shared memory the pool runs on the calling thread and says why.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { ModuleBuilder } from "../../../engine/wasm/builder.ts";
import { KernelContext } from "../../../engine/wasm/context.ts";
import { wasmFeatures } from "../../../engine/wasm/features.ts";
import { WasmHeap } from "../../../engine/wasm/memory.ts";
import { ThreadPool, WasmThreadError } from "../../../engine/wasm/threads.ts";

const features = wasmFeatures();

/** tally(tid, n, ptr): counts[tid] += 1 + n·1000 (atomically), traps if ptr is 0. */
function tally(b: ModuleBuilder): void {
  b.export("tally", ["i32", "i32", "i32"], [], (f) => {
    const [tid, n, ptr] = f.params;
    f.get(ptr);
    f.i32.eqz();
    f.if();
    f.unreachable();
    f.end();
    f.add(ptr, () => f.mul(tid, 4));
    f.add(1, () => f.mul(n, 1000));
    f.i32.atomic.rmwAdd();
    f.drop();
  });
}

async function withPool(
  threads: number,
  fn: (ctx: KernelContext, pool: ThreadPool) => void | Promise<void>,
  opts: { idleMs?: number; spinUs?: number } = {},
): Promise<void> {
  const heap = new WasmHeap({ shared: features.threads });
  const pool = await ThreadPool.create(heap, { threads, ...opts });
  try {
    await fn(new KernelContext(heap, pool, features), pool);
  } finally {
    pool.dispose();
  }
}

/**
 * meet(tid, n, flags): threads 1..n-1 set flags[tid] = 1; thread 0 spins (at most 2^30 turns)
 * until they all have, so each worker gets the time to claim its own share.
 */
function meet(b: ModuleBuilder): void {
  b.export("meet", ["i32", "i32", "i32"], [], (f) => {
    const [tid, n, flags] = f.params;
    const [t, spins] = [f.local("i32"), f.local("i32")];
    f.get(tid);
    f.if();
    f.add(flags, () => f.mul(tid, 4));
    f.i32.const(1);
    f.i32.atomic.store();
    f.return();
    f.end();
    f.for(t, 1, n, 1, () => {
      const done = f.block();
      const wait = f.loop();
      f.add(flags, () => f.mul(t, 4));
      f.i32.atomic.load();
      f.brIf(done);
      f.inc(spins);
      f.get(spins);
      f.i32.const(1 << 30);
      f.i32.ltU();
      f.brIf(wait);
      f.end();
      f.end();
    });
  });
}

Deno.test({
  name: "a module compiled after the workers started runs on every thread",
  ignore: !features.threads,
  fn: () =>
    withPool(3, (ctx, pool) => {
      strictEqual(pool.workers, 2);
      const counts = ctx.heap.alloc(16);
      ctx.heap.i32(counts, 4).fill(0);
      const mod = ctx.module("tally", tally);
      for (let i = 0; i < 100; i++) ctx.run(mod, "tally", [counts]);
      // Whoever ran each share (worker or caller), every tid ran once per job.
      deepStrictEqual([...ctx.heap.i32(counts, 4)], [300100, 300100, 300100, 0]);
      const flags = ctx.heap.alloc(16);
      ctx.heap.i32(flags, 4).fill(0);
      const taken = pool.takenBack;
      ctx.run(ctx.module("meet", meet), "meet", [flags]);
      deepStrictEqual([...ctx.heap.i32(flags, 3)], [0, 1, 1]);
      strictEqual(pool.takenBack, taken, "both workers ran their own shares");
    }),
});

Deno.test({
  name: "a trap on a worker is thrown on the calling thread, naming the thread",
  ignore: !features.threads,
  fn: () =>
    withPool(2, (ctx) => {
      const mod = ctx.module("trap", (b) => {
        b.export("trapOnOne", ["i32", "i32"], [], (f) => {
          f.get(f.params[0]);
          f.if();
          f.unreachable();
          f.end();
        });
      });
      throws(
        () => ctx.run(mod, "trapOnOne", []),
        (e: Error) =>
          e instanceof WasmThreadError && /trapOnOne failed on thread 1/.test(e.message),
      );
      ctx.run(mod, "trapOnOne", [], 1); // the pool still works
      throws(() => ctx.run(mod, "nope", []), /no export 'nope'/);
    }),
});

Deno.test({
  name: "an idle pool parks its workers and starts them again",
  ignore: !features.threads,
  fn: () =>
    withPool(2, async (ctx, pool) => {
      const counts = ctx.heap.alloc(16);
      const mod = ctx.module("tally", tally);
      ctx.run(mod, "tally", [counts]);
      await new Promise((r) => setTimeout(r, 80));
      strictEqual(pool.workers, 0, "parked");
      ctx.heap.i32(counts, 4).fill(0);
      ctx.run(mod, "tally", [counts]); // runs at once on the calling thread, workers start
      strictEqual(pool.workers as number, 1);
      await pool.ready();
      ctx.run(mod, "tally", [counts]);
      deepStrictEqual([...ctx.heap.i32(counts, 2)], [1001 + 2001, 2001]);
    }, { idleMs: 20 }),
});

Deno.test({
  name: "shares of workers that have not started are run by the caller, same tids",
  ignore: !features.threads,
  fn: () =>
    withPool(3, async (ctx, pool) => {
      const counts = ctx.heap.alloc(16);
      ctx.heap.i32(counts, 4).fill(0);
      const mod = ctx.module("tally", tally);
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 2)); // the workers go to sleep (spinUs 0)
        ctx.run(mod, "tally", [counts]);
      }
      deepStrictEqual([...ctx.heap.i32(counts, 4)], [30010, 30010, 30010, 0]);
      ok(pool.takenBack > 0, "a sleeping worker's share was taken back");
    }, { spinUs: 0 }),
});

Deno.test("without shared memory the pool runs on one thread and says why", () => {
  const heap = new WasmHeap({ shared: false });
  const pool = new ThreadPool(heap, { threads: 4 });
  strictEqual(pool.threads, 1);
  ok(/not a shared memory/.test(pool.singleWhy));
  const ctx = new KernelContext(heap, pool, features);
  const counts = heap.alloc(16);
  heap.i32(counts, 4).fill(0);
  ctx.run(ctx.module("tally", tally), "tally", [counts]);
  deepStrictEqual([...heap.i32(counts, 2)], [1001, 0]);
  pool.dispose();
});

Deno.test("scratch memory lives until the kernel returns, then is reused", () => {
  const heap = new WasmHeap();
  const pool = new ThreadPool(heap, { threads: 1 });
  const ctx = new KernelContext(heap, pool, features);
  throws(() => ctx.scratch(64), /outside a kernel/);
  const first = ctx.scoped(() => [ctx.scratch(100), ctx.scratch(1000)]);
  ok(first[1] >= first[0] + 100);
  const inUse = heap.stats().inUse;
  const again = ctx.scoped(() => [ctx.scratch(100), ctx.scratch(1000)]);
  strictEqual(again[1] - again[0], 128, "after an overflow the arena holds the whole kernel");
  strictEqual(heap.stats().inUse, inUse);
  ctx.dispose();
  pool.dispose();
});

Deno.test({
  name: "a process that never disposes its pool still exits (the idle pool parks)",
  ignore: !features.threads,
  async fn() {
    const threads = new URL("../../../engine/wasm/threads.ts", import.meta.url).href;
    const heap = new URL("../../../engine/wasm/memory.ts", import.meta.url).href;
    const script = `
      import { ThreadPool } from "${threads}";
      import { WasmHeap } from "${heap}";
      const pool = await ThreadPool.create(new WasmHeap(), { threads: 2, idleMs: 50 });
      console.log("workers", pool.workers);`;
    const t0 = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", script],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
    strictEqual(new TextDecoder().decode(out.stdout).trim(), "workers 1");
    ok(performance.now() - t0 < 15_000);
  },
});
