// The wasm heap: size classes, 64-byte alignment, reuse through free lists, bytes at the top
// returned to the bump pointer, growth that keeps data, and the 4 GiB limit's error message.

import { deepStrictEqual, notStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  BLOCK_ALIGN,
  sizeClass,
  WASM32_MAX_BYTES,
  WasmHeap,
  WasmHeapError,
} from "../../../engine/wasm/memory.ts";

Deno.test("size classes: 64-byte multiples with at most 25% slack", () => {
  for (const n of [0, 1, 63, 64, 65, 100, 1000, 4097, 65536, 1e6, 3e8 + 1]) {
    const c = sizeClass(n);
    ok(c >= n && c % BLOCK_ALIGN === 0, `${n} -> ${c}`);
    if (n > 64) ok(c <= 1.25 * n + BLOCK_ALIGN, `${n} -> ${c}`);
  }
  strictEqual(sizeClass(65536), 65536);
});

Deno.test("blocks are aligned, disjoint, pooled and reused", () => {
  const heap = new WasmHeap({ initialBytes: 1 << 16 });
  const sizes = [1, 64, 100, 1000, 5000, 64];
  const ptrs = sizes.map((n) => heap.alloc(n));
  for (const p of ptrs) strictEqual(p % BLOCK_ALIGN, 0);
  const spans = ptrs.map((p) => [p, p + heap.sizeOf(p)]).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) ok(spans[i][0] >= spans[i - 1][1]);
  ok(!ptrs.includes(0));
  heap.free(ptrs[3]);
  strictEqual(heap.stats().pooled, sizeClass(1000));
  strictEqual(heap.alloc(900), ptrs[3], "same class reuses the freed block");
  strictEqual(heap.stats().pooled, 0);
  throws(() => heap.free(12345), /not a live block/);
  heap.free(ptrs[0]);
  throws(() => heap.free(ptrs[0]), /not a live block/);
});

Deno.test("blocks freed at the top go back to the bump pointer", () => {
  const heap = new WasmHeap({ initialBytes: 1 << 16 });
  const a = heap.alloc(64);
  const b = heap.alloc(4096);
  const c = heap.alloc(64);
  heap.free(b); // pooled: c is above it
  heap.free(c); // top: c and then b are released
  deepStrictEqual(heap.stats().pooled, 0);
  strictEqual(heap.alloc(10000), b, "a different class starts where b was");
  strictEqual(heap.stats().inUse, sizeClass(64) + sizeClass(10000));
  notStrictEqual(a, b);
});

Deno.test("the heap grows on demand and keeps its data", () => {
  const heap = new WasmHeap({ initialBytes: 1 << 16 });
  const a = heap.alloc(1024);
  heap.f32(a, 256).fill(7);
  const before = heap.buffer.byteLength;
  const big = heap.alloc(3 << 20);
  ok(heap.buffer.byteLength > before && heap.buffer.byteLength >= big + (3 << 20));
  ok(heap.f32(a, 256).every((v) => v === 7));
  heap.f32(big, 3 << 18).fill(1);
  strictEqual(heap.stats().heapBytes, heap.buffer.byteLength);
});

Deno.test("past the limit an allocation names the tensor, its bytes and the limit", () => {
  const small = new WasmHeap({ initialBytes: 1 << 16, maxBytes: 1 << 20 });
  small.alloc(512 << 10);
  throws(
    () => small.alloc(600 << 10, "a f32 tensor of 153600 elements"),
    (e: Error) =>
      e instanceof WasmHeapError &&
      /a f32 tensor of 153600 elements \(614400 bytes\)/.test(e.message) &&
      /limit of 1048576 bytes/.test(e.message),
  );
  const heap = new WasmHeap({ initialBytes: 1 << 16 });
  strictEqual(heap.maxBytes, WASM32_MAX_BYTES);
  throws(
    () => heap.alloc(5 * 2 ** 30, "transformer.wte.weight"),
    (e: Error) =>
      e instanceof WasmHeapError &&
      e.message.includes("transformer.wte.weight (5368709120 bytes)") &&
      e.message.includes("4294967296 bytes (4.00 GiB, wasm32's address space is 4 GiB)"),
  );
  ok(heap.stats().heapBytes < 1 << 20, "a refused allocation does not grow the heap");
});
