// What this runtime's WebAssembly offers the wasm backend, found by validating tiny modules
// (idea from ekzhang/jax-js `featureProbe.ts`): SIMD128, relaxed SIMD (the FMA and the i8 dot
// product the kernels use), threads (shared memory, atomics, module Workers, and in a browser
// `crossOriginIsolated`), and whether this thread may block in Atomics.wait (a browser's main
// thread may not: it spins instead).

import { ModuleBuilder } from "./builder.ts";

/** The WebAssembly features the wasm backend uses. */
export interface WasmFeatures {
  /** SIMD128 (fixed-width 128-bit vectors). */
  readonly simd: boolean;
  /** Relaxed SIMD: f32x4.relaxed_madd and i32x4.relaxed_dot_i8x16_i7x16_add_s validate. */
  readonly relaxedSimd: boolean;
  /** f32x4.relaxed_madd rounds once (a hardware FMA), measured; false without relaxed SIMD. */
  readonly fusedMadd: boolean;
  /** Shared memory, atomics and module Workers: a thread pool can share the heap. */
  readonly threads: boolean;
  /** Why `threads` is false (one line), or "" when it is true. */
  readonly threadsWhy: string;
  /** This thread may block in Atomics.wait (false on a browser's main thread). */
  readonly canBlock: boolean;
}

function validates(build: (m: ModuleBuilder) => void): boolean {
  try {
    const m = new ModuleBuilder();
    build(m);
    return WebAssembly.validate(m.bytes());
  } catch {
    return false;
  }
}

function probeSimd(): boolean {
  return validates((m) =>
    m.export("f", ["i32"], ["i32"], (f) => {
      f.get(f.params[0]);
      f.i32x4.splat();
      f.i32x4.extractLane(1);
    })
  );
}

function relaxedModule(m: ModuleBuilder): void {
  m.export("madd", ["f32", "f32", "f32"], ["f32"], (f) => {
    for (const p of f.params) {
      f.get(p);
      f.f32x4.splat();
    }
    f.f32x4.relaxedMadd();
    f.f32x4.extractLane(0);
  });
  m.export("dot", ["i32", "i32"], ["i32"], (f) => {
    f.get(f.params[0]);
    f.i32x4.splat();
    f.get(f.params[1]);
    f.i32x4.splat();
    f.i32x4.const([0, 0, 0, 0]);
    f.i32x4.relaxedDotI8x16I7x16AddS();
    f.i32x4.extractLane(0);
  });
}

/**
 * Does relaxed_madd fuse here? a·b + c with a = b = 1 + 2^-12 and c = -(1 + 2^-11): the exact
 * result 2^-24 is lost when a·b is rounded to f32 first.
 */
function probeFused(): boolean {
  const m = new ModuleBuilder();
  relaxedModule(m);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(m.bytes()));
  const madd = inst.exports.madd as (a: number, b: number, c: number) => number;
  const a = 1 + 2 ** -12;
  return madd(a, a, -(1 + 2 ** -11)) !== 0;
}

function probeThreads(): string {
  if (typeof SharedArrayBuffer === "undefined") {
    const coi = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
    return coi === false
      ? "the page is not cross-origin isolated (serve it with COOP/COEP headers)"
      : "SharedArrayBuffer is unavailable";
  }
  if (typeof Worker === "undefined") return "Workers are unavailable";
  const ok = validates((m) => {
    m.importMemory({ min: 1, max: 1, shared: true });
    m.export("f", ["i32"], ["i32"], (f) => {
      f.get(f.params[0]);
      f.i32.const(1);
      f.i32.atomic.rmwAdd();
    });
  });
  if (!ok) return "WebAssembly threads (shared memory, atomics) do not validate";
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch (e) {
    return `a shared WebAssembly.Memory cannot be created (${(e as Error).message})`;
  }
  return "";
}

function probeCanBlock(): boolean {
  if (typeof SharedArrayBuffer === "undefined") return false;
  try {
    // The value differs, so where blocking is allowed this returns "not-equal" at once.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

let cached: WasmFeatures | null = null;

/** Probe the runtime once (later calls return the same object). */
export function wasmFeatures(): WasmFeatures {
  if (cached) return cached;
  if (typeof WebAssembly === "undefined") {
    const why = "WebAssembly is unavailable";
    return cached = {
      simd: false,
      relaxedSimd: false,
      fusedMadd: false,
      threads: false,
      threadsWhy: why,
      canBlock: false,
    };
  }
  const relaxedSimd = validates(relaxedModule);
  const threadsWhy = probeThreads();
  return cached = {
    simd: probeSimd(),
    relaxedSimd,
    fusedMadd: relaxedSimd && probeFused(),
    threads: threadsWhy === "",
    threadsWhy,
    canBlock: probeCanBlock(),
  };
}

/** One line: `simd, relaxed-simd (fused madd), threads`. */
export function describeFeatures(f: WasmFeatures): string {
  const parts = [
    f.simd ? "simd128" : "no simd128",
    f.relaxedSimd ? `relaxed-simd${f.fusedMadd ? " (fused madd)" : ""}` : "no relaxed-simd",
    f.threads ? "threads" : `no threads (${f.threadsWhy})`,
  ];
  return parts.join(", ");
}
