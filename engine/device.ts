// Which backend new tensors go to: `cpu` by default, `webgpu` once acquired. Never switches
// silently: `auto` picks webgpu when an adapter exists and otherwise prints a one-line notice.

import type { Backend, BackendName } from "./backend.ts";
import { CpuBackend } from "./cpu/backend.ts";
import { WebGpuBackend } from "./webgpu/backend.ts";
import { hasWebGPUAdapter } from "./webgpu/device.ts";

const cpu = new CpuBackend();
let current: Backend = cpu;
let webgpu: Promise<WebGpuBackend> | null = null;

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

/** Does this runtime have a WebGPU adapter? */
export function hasWebGPU(): Promise<boolean> {
  return hasWebGPUAdapter();
}

/** Choice of backend: a name, or `auto` (webgpu when an adapter exists, else cpu). */
export type BackendChoice = BackendName | "auto";

/**
 * Make `name` the backend for new tensors and return it. `auto` falls back to cpu with a notice
 * on stderr (pass `quiet` to suppress it); naming `webgpu` without an adapter throws.
 */
export async function useBackend(name: BackendChoice, quiet = false): Promise<Backend> {
  if (name === "cpu") {
    current = cpu;
  } else if (name === "webgpu") {
    current = await webgpuBackend();
  } else if (await hasWebGPUAdapter()) {
    current = await webgpuBackend();
  } else {
    if (!quiet) console.error("notice: no WebGPU adapter found; using the cpu backend");
    current = cpu;
  }
  return current;
}

/** One line naming the current backend's device. */
export function describeDevice(): string {
  return current.describe();
}
