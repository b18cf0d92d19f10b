// Adapter and device acquisition: request the adapter's own maxima for the limits the engine
// uses, watch for uncaptured errors and device loss, and describe what was chosen in one line.

import type { TextureLimits } from "../backend.ts";
import { BackendUnavailableError } from "../errors.ts";

/** The limits the engine takes at the adapter's best (maxima; the alignment's minimum). */
export const USED_LIMITS = [
  "maxStorageBufferBindingSize",
  "minStorageBufferOffsetAlignment",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupsPerDimension",
  "maxTextureDimension2D",
  "maxTextureArrayLayers",
] as const;

/** An acquired device with what we learned about its adapter. */
export interface GpuContext {
  adapter: GPUAdapter;
  device: GPUDevice;
  info: GPUAdapterInfo;
  limits: Record<(typeof USED_LIMITS)[number], number>;
  /** WGSL `packed_4x8_integer_dot_product` (dot4I8Packed) is available. */
  hasDot4I8: boolean;
  isFallback: boolean;
  /** Read-only storage textures for staged kernels (WGSL readonly_and_readwrite_storage_textures). */
  textures?: TextureLimits;
}

/** Is a WebGPU adapter available at all? */
export async function hasWebGPUAdapter(): Promise<boolean> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return false;
  try {
    return (await navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/**
 * WGSL language features the runtime announces (absent in older runtimes). Deno implements
 * `navigator.gpu.wgslLanguageFeatures`, but its default type libraries do not declare it yet,
 * so it is read through this narrow type rather than the `GPU` class.
 */
function wgslLanguageFeatures(): ReadonlySet<string> | undefined {
  return (navigator.gpu as { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures;
}

/** Acquire the default adapter and a device with raised limits. */
export async function acquireDevice(): Promise<GpuContext> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new BackendUnavailableError("webgpu: navigator.gpu is not available in this runtime");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new BackendUnavailableError(
      "webgpu: no adapter found (install a GPU driver, or Mesa's llvmpipe: " +
        "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri), or use --backend cpu",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const k of USED_LIMITS) requiredLimits[k] = adapter.limits[k];
  // Timestamps time the autotuner's candidates on the GPU itself (engine/webgpu/autotune.ts).
  const requiredFeatures: GPUFeatureName[] = adapter.features.has("timestamp-query")
    ? ["timestamp-query"]
    : [];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const limits = {} as GpuContext["limits"];
  for (const k of USED_LIMITS) limits[k] = device.limits[k];
  const features = wgslLanguageFeatures();
  return {
    adapter,
    device,
    info: adapter.info,
    limits,
    hasDot4I8: features?.has("packed_4x8_integer_dot_product") ?? false,
    isFallback: (adapter.info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    textures: features?.has("readonly_and_readwrite_storage_textures")
      ? { side: limits.maxTextureDimension2D, layers: limits.maxTextureArrayLayers }
      : undefined,
  };
}

const MiB = 1024 * 1024;

/** One line naming the adapter and the limits that matter. */
export function describeContext(ctx: GpuContext): string {
  const i = ctx.info;
  const name = i.description || [i.vendor, i.architecture, i.device].filter(Boolean).join(" ");
  return `webgpu: ${name}${ctx.isFallback ? " (software fallback adapter)" : ""}; ` +
    `max binding ${Math.floor(ctx.limits.maxStorageBufferBindingSize / MiB)} MiB, ` +
    `max buffer ${Math.floor(ctx.limits.maxBufferSize / MiB)} MiB, ` +
    `workgroup storage ${ctx.limits.maxComputeWorkgroupStorageSize / 1024} KiB, ` +
    `dot4I8Packed ${ctx.hasDot4I8 ? "yes" : "no"}, ` +
    `read-only storage textures ${ctx.textures ? "yes" : "no"}`;
}
