// Typed errors the engine throws. Messages name the op, what it received and what it expected.

/** Bad shapes given to an op: `matmul: inner dims differ: a is [4, 8], b is [7, 3]`. */
export class ShapeError extends Error {
  /** Always "ShapeError". */
  override name = "ShapeError";
}

/** A backend was asked for but cannot be used here (no WebGPU adapter, a limit exceeded). */
export class BackendUnavailableError extends Error {
  /** Always "BackendUnavailableError". */
  override name = "BackendUnavailableError";
}

/** A WGSL kernel failed to compile or validate; carries WGSL's messages and the source. */
export class ShaderCompileError extends Error {
  /** Always "ShaderCompileError". */
  override name = "ShaderCompileError";
  /** `kernel` names the op, `messages` holds WGSL's diagnostics, `source` the full WGSL. */
  constructor(readonly kernel: string, readonly messages: string, readonly source: string) {
    super(`kernel '${kernel}' failed to compile: ${messages.trim()}`);
  }
}

/** The GPU device reported an error or was lost. */
export class DeviceError extends Error {
  /** Always "DeviceError". */
  override name = "DeviceError";
}

/** Shapes as `[4, 8]` in messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * A tensor or launch does not fit the device: the message names the tensor or op, its bytes and
 * the limit, and what to change.
 */
export class DeviceLimitError extends Error {
  /** Always "DeviceLimitError". */
  override name = "DeviceLimitError";
}
