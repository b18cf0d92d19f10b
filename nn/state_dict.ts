// State-dict plumbing shared by Module and the optimizer: the value types a state dict may hold
// (tensors or host arrays), the error naming what did not fit, and the in-place copy of a value
// into a parameter's storage (same backend: a device copy; CPU tensors or host data: a write).

import { CheckpointError } from "../engine/errors.ts";
import { CpuStorage } from "../engine/cpu/backend.ts";
import { allocArray, type DType, type TypedArray } from "../engine/dtype.ts";
import { launch } from "../engine/op.ts";
import { StorageRef, Tensor } from "../engine/tensor.ts";
import { contiguous, copyOp } from "../kernels/mod.ts";

/** Host data for a state-dict entry: a row-major typed array and its shape. */
export interface HostArray {
  /** Dimensions, row-major. */
  shape: readonly number[];
  /** The elements, row-major (`shape`'s product of them). */
  data: ArrayLike<number> & { length: number };
}

/** What `loadStateDict` accepts per name: a tensor or host data. */
export type StateValue = Tensor | HostArray;

/** A state dict did not match the model: lists the missing, unexpected and mis-shaped names. */
export class StateDictError extends CheckpointError {
  /** Always "StateDictError". */
  override name = "StateDictError";
}

/** Options of `loadStateDict`. */
export interface LoadOptions {
  /** Throw on missing or unexpected names (default true); shape mismatches always throw. */
  strict?: boolean;
}

/** Up to `max` names joined by commas, then how many more. */
export function listNames(names: string[], max = 6): string {
  const shown = names.slice(0, max).join(", ");
  return names.length > max ? `${shown}, … (${names.length - max} more)` : shown;
}

/** Copy host data or a tensor into a parameter's storage in place. */
export function assign(dst: Tensor, src: StateValue, name: string): void {
  if (src instanceof Tensor) {
    if (src.backend === dst.backend) {
      launch(
        copyOp,
        [src.dtype === dst.dtype ? src : castHost(src, dst.dtype)],
        [dst],
        undefined,
      );
      return;
    }
    if (!(src.ref.storage instanceof CpuStorage)) {
      throw new StateDictError(
        `loadStateDict: '${name}' lives on ${src.backend.name} and the model on ` +
          `${dst.backend.name}; read it first (await t.data()) and pass { shape, data }`,
      );
    }
    const host = contiguous(src);
    dst.backend.write(dst.ref.storage, toDType(hostData(host), dst.dtype));
    if (host !== src) host.dispose();
    return;
  }
  dst.backend.write(dst.ref.storage, toDType(src.data, dst.dtype));
}

/** The row-major data of a contiguous CPU tensor. */
function hostData(t: Tensor): TypedArray {
  const all = (t.ref.storage as CpuStorage).data;
  return all.subarray(t.offset, t.offset + t.size);
}

/** A same-backend tensor converted to another dtype (CPU only; GPU tensors are f32 anyway). */
function castHost(t: Tensor, dtype: DType): Tensor {
  if (!(t.ref.storage instanceof CpuStorage)) {
    throw new StateDictError(`loadStateDict: cannot convert ${t.dtype} to ${dtype} on the device`);
  }
  const c = contiguous(t);
  const arr = toDType(hostData(c), dtype);
  if (c !== t) c.dispose();
  return new Tensor(new StorageRef(t.backend, t.backend.upload(arr, dtype)), [...t.shape]);
}

/** A copy of `data` as a typed array of `dtype`. */
export function toDType(data: ArrayLike<number>, dtype: DType): TypedArray {
  const out = allocArray(dtype, data.length);
  out.set(data);
  return out;
}
