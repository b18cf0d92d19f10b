// Which backend new tensors go to: chosen, never guessed. BACKENDS is the registry (a new
// backend is one line here, once its kernels are served: engine/backend.ts). `auto` takes a
// hardware WebGPU adapter, else `wasm` (WebAssembly SIMD on worker threads), else `cpu`;
// software adapters (Mesa's llvmpipe, SwiftShader) only when `webgpu` is named. The reason for
// the choice is kept for the run's header (`describeChoice`).

import { ConfigError } from "./errors.ts";
import type { Backend, BackendName } from "./backend.ts";
import { CpuBackend } from "./cpu/backend.ts";
import { WasmBackend } from "./wasm/backend.ts";
import { wasmFeatures } from "./wasm/features.ts";
import { WebGpuBackend } from "./webgpu/backend.ts";
import { hasWebGPUAdapter } from "./webgpu/device.ts";

/** How a backend is made: the threads of the wasm backend (default: the machine's cores). */
export interface BackendOptions {
  /** Worker threads of the wasm backend, the calling thread included (default: the cores). */
  threads?: number;
}

const cpu = new CpuBackend();
let webgpu: Promise<WebGpuBackend> | null = null;
let wasm: Promise<WasmBackend> | null = null;

/** Every backend by name: how to get it (made once, then shared). */
export const BACKENDS: Record<
  Exclude<BackendName, "meta">,
  (o: BackendOptions) => Promise<Backend>
> = {
  cpu: () => Promise.resolve(cpu),
  wasm: (o) => wasmBackend(o),
  webgpu: () => webgpuBackend(),
};

let current: Backend = cpu;
let why = "cpu: the default until a backend is chosen";

/** The backend new tensors are created on. */
export function getBackend(): Backend {
  return current;
}

/** The CPU backend (always available). */
export function cpuBackend(): Backend {
  return cpu;
}

/** The WebGPU backend, acquiring the device on first call (throws when there is no adapter). */
export function webgpuBackend(): Promise<WebGpuBackend> {
  webgpu ??= WebGpuBackend.create();
  webgpu.catch(() => (webgpu = null));
  return webgpu;
}

/**
 * The wasm backend, starting its worker threads on first call; `threads` counts only then (a
 * later different count is refused rather than ignored).
 */
export async function wasmBackend(o: BackendOptions = {}): Promise<WasmBackend> {
  wasm ??= WasmBackend.create({ threads: o.threads });
  wasm.catch(() => (wasm = null));
  const be = await wasm;
  if (o.threads !== undefined && o.threads !== be.pool.threads) {
    throw new ConfigError(
      `wasm: the backend already runs ${be.pool.threads} threads; ${o.threads} were asked for`,
    );
  }
  return be;
}

/** Does this runtime have a WebGPU adapter (hardware or software)? */
export function hasWebGPU(): Promise<boolean> {
  return hasWebGPUAdapter();
}

/** A hardware WebGPU adapter, or why there is none (no adapter, or a software one). */
async function hardwareAdapter(): Promise<string | null> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return "no WebGPU in this runtime";
  try {
    const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!a) return "no WebGPU adapter";
    const info = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
    if (info.isFallbackAdapter) {
      return `the WebGPU adapter is a software one (${info.description || info.vendor})`;
    }
    return null;
  } catch (e) {
    return `WebGPU failed: ${(e as Error).message}`;
  }
}

/** Choice of backend: a name, or `auto` (a hardware GPU, else wasm, else cpu). */
export type BackendChoice = Exclude<BackendName, "meta"> | "auto";

/** Every choice, in the order a user reads them (`--backend`'s list). */
export const BACKEND_CHOICES: readonly BackendChoice[] = [
  "auto",
  ...(["webgpu", "wasm", "cpu"] as const satisfies readonly (keyof typeof BACKENDS)[]),
];

/**
 * Make `name` the backend for new tensors and return it. `auto`: a hardware WebGPU adapter,
 * else wasm, else cpu, with the reason kept for `describeChoice` (and printed to stderr unless
 * `quiet`). Naming `webgpu` without an adapter throws; naming it takes a software adapter too.
 */
export async function useBackend(
  name: BackendChoice,
  o: BackendOptions & { quiet?: boolean } | boolean = {},
): Promise<Backend> {
  const opts = typeof o === "boolean" ? { quiet: o } : o;
  if (name !== "auto") {
    current = await BACKENDS[name](opts);
    why = `${name}: asked for`;
    return current;
  }
  const noGpu = await hardwareAdapter();
  if (noGpu === null) {
    current = await webgpuBackend();
    why = "auto: a hardware WebGPU adapter";
  } else if (wasmFeatures().simd) {
    current = await wasmBackend(opts);
    why = `auto: wasm; ${noGpu.replace("the WebGPU adapter is", "WebGPU's adapter is")}, ` +
      `used only with --backend webgpu`;
  } else {
    current = cpu;
    why = `auto: cpu; ${noGpu}, and this runtime lacks WebAssembly SIMD`;
  }
  if (!opts.quiet && current !== cpu && !why.includes("hardware")) console.error(`notice: ${why}`);
  return current;
}

/** One line naming the current backend's device. */
export function describeDevice(): string {
  return current.describe();
}

/** Why the current backend was chosen (asked for, or what `auto` found). */
export function describeChoice(): string {
  return why;
}
