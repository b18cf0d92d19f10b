// The project's typed errors. A UserError is one the user can fix (a shape, a device limit, a
// config, a checkpoint, data): its message, one line, names what was wrong and what to do, and
// the CLI prints it so. Other errors are bugs or device failures and keep their stacks.

/** An error the user can fix; the message says what was wrong and what to do. */
export class UserError extends Error {
  /** The class name, for messages. */
  override name = "UserError";
}

/** Bad shapes given to an op: `matmul: inner dims differ: a is [4, 8], b is [7, 3]`. */
export class ShapeError extends UserError {
  /** Always "ShapeError". */
  override name = "ShapeError";
}

/** A backend was asked for but cannot be used here (no WebGPU adapter, a limit exceeded). */
export class BackendUnavailableError extends UserError {
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
export class DeviceLimitError extends UserError {
  /** Always "DeviceLimitError". */
  override name = "DeviceLimitError";
}

/** A configuration is invalid: the message names the field and the value. */
export class ConfigError extends UserError {
  /** Always "ConfigError". */
  override name = "ConfigError";
}

/** A checkpoint cannot be used: damaged, hostile, for another build, or missing; says what. */
export class CheckpointError extends UserError {
  /** Always "CheckpointError". */
  override name = "CheckpointError";
}
