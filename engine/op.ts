// defineOp/apply: the one way a kernels/ file turns a computation into a differentiable tensor
// function. An op is its outputs' shapes, how they are made (a kernel with one implementation
// per backend, a view of its input, or several kernel launches), and its backward. apply checks
// the inputs, allocates the outputs, makes inputs row-major unless the op reads strides itself,
// runs the op, and records one tape node for all outputs when a gradient can flow. Outputs
// marked `saved` are kept for the backward only (freed with the node); `grad: false` outputs
// carry no gradient. Launches whose arguments exceed one binding of the device are cut into
// pieces by the kernel's split rule (or refused with the sizes): limits are the engine's.
// While a profile records (profile.ts), ops and launches are timed; otherwise they test one
// binding each.

import type { ArgInfo, Backend, BoundArg, Kernel, LaunchPiece } from "./backend.ts";
import { byteSize, type DType, isFloat } from "./dtype.ts";
import { isGradEnabled } from "./autograd.ts";
import { DeviceLimitError, fmtShape } from "./errors.ts";
import { activeProfile } from "./profile.ts";
import { engineOps } from "./registry.ts";
import { sizeOf } from "./shape.ts";
import { StorageRef, Tensor } from "./tensor.ts";

/** One output of an op. */
export interface OutSpec {
  /** Its shape. */
  readonly shape: readonly number[];
  /** Its dtype (default: the first input's). */
  readonly dtype?: DType;
  /** Kept for the backward only: not returned, freed with the tape node. */
  readonly saved?: boolean;
  /** Carries no gradient (an index, a scale treated as a constant). */
  readonly grad?: false;
}

/** What a backward receives besides the first output's gradient. */
export interface BackwardContext<P> {
  /** The inputs, in order. */
  readonly inputs: readonly Tensor[];
  /** The first returned output (the op's value). */
  readonly out: Tensor;
  /** Every returned output, in order. */
  readonly outputs: readonly Tensor[];
  /** The gradient of every differentiable output, in order (zeros where none reached it). */
  readonly dys: readonly Tensor[];
  /** The outputs marked `saved`, in order. */
  readonly saved: readonly Tensor[];
  /** The op's parameters. */
  readonly params: P;
}

/** The layout of a view: the same storage seen with another shape, strides and offset. */
export interface Layout {
  /** Shape of the view. */
  shape: readonly number[];
  /** Strides of the view, in elements. */
  strides: readonly number[];
  /** Storage index of the view's element [0, 0, ...]. */
  offset: number;
}

/** What every op declares: its name, outputs and backward. */
interface OpCommon<P> {
  /** The op's name (its function's), used in errors and on the tape. */
  readonly name: string;
  /** The shape of the single output (or give `outputs`). */
  shape?(inputs: Tensor[], params: P): readonly number[];
  /** The single output's dtype (default: the first input's). */
  dtype?(inputs: Tensor[], params: P): DType;
  /** Several outputs: shapes, dtypes, which are saved or carry no gradient. */
  outputs?(inputs: Tensor[], params: P): OutSpec[];
  /** The kernel reads arbitrary strides and offsets itself (default false: rows at offset 0). */
  readonly strided?: boolean;
  /** The inputs' gradients (null where none flows) from the first output's gradient `dy`. */
  backward?(dy: Tensor, ctx: BackwardContext<P>): (Tensor | null)[];
}

/** An op made by one kernel launch: the kernel's table is part of the op. */
export type KernelOp<P> = OpCommon<P> & Kernel<P>;

/** An op whose output is a view of its first input (no copy, no kernel). */
export interface ViewOp<P> extends OpCommon<P> {
  /** The view's layout over `x`'s storage. */
  view(x: Tensor, params: P): Layout;
}

/**
 * An op made by several kernel launches (`launch` into tensors from `empty`, and views of
 * them): one tape node for the whole, as if it were one kernel.
 */
export interface ComposedOp<P> extends OpCommon<P> {
  /** The outputs, in the order `shape`/`outputs` declares them. */
  compute(inputs: Tensor[], params: P): Tensor[];
}

/** Everything one op is. */
export type OpDef<P> = KernelOp<P> | ViewOp<P> | ComposedOp<P>;

/** Identity helper that types an op definition (a kernel op, a view op or a composed op). */
export function defineOp<P>(def: KernelOp<P>): KernelOp<P>;
/** A view op. */
export function defineOp<P>(def: ViewOp<P>): ViewOp<P>;
/** A composed op. */
export function defineOp<P>(def: ComposedOp<P>): ComposedOp<P>;
export function defineOp<P>(def: OpDef<P>): OpDef<P> {
  return def;
}

/** Layout of a tensor as a kernel argument. */
export function argInfo(t: Tensor): ArgInfo {
  return { shape: t.shape, strides: t.strides, offset: t.offset, dtype: t.dtype };
}

/** Bytes a tensor of this shape and dtype takes. */
export function bytesOf(shape: readonly number[], dtype: DType): number {
  return sizeOf(shape) * byteSize(dtype);
}

/**
 * Allocate a tensor of `shape` on `backend` (contents unspecified). `what` names it in the
 * error when it is larger than the backend can hold.
 */
export function emptyOn(
  backend: Backend,
  shape: readonly number[],
  dtype: DType,
  what = "tensor",
): Tensor {
  checkFits(backend, shape, dtype, what);
  const storage = backend.alloc(sizeOf(shape), dtype, `${what} ${fmtShape(shape)} ${dtype}`);
  return new Tensor(new StorageRef(backend, storage), [...shape]);
}

/**
 * Throw DeviceLimitError, naming `what`, its bytes and the limit, when a tensor of `shape` and
 * `dtype` is larger than `backend` can hold.
 */
export function checkFits(
  backend: Backend,
  shape: readonly number[],
  dtype: DType,
  what = "tensor",
): void {
  const bytes = bytesOf(shape, dtype);
  const limit = backend.traits.maxTensorBytes;
  if (bytes > limit) {
    throw new DeviceLimitError(
      `${what} ${fmtShape(shape)} ${dtype} needs ${bytes} bytes (${mib(bytes)}), over the ` +
        `${backend.name} backend's limit of ${limit} bytes (${mib(limit)}) per tensor`,
    );
  }
}

/** Allocate an output tensor on `like`'s backend. */
export function empty(like: Tensor, shape: readonly number[], dtype: DType = like.dtype): Tensor {
  return emptyOn(like.backend, shape, dtype);
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function sameBackend(name: string, tensors: readonly Tensor[]): Backend {
  const backend = tensors[0].backend;
  for (const x of tensors) {
    x.assertAlive(name);
    if (x.backend !== backend) {
      throw new Error(
        `${name}: inputs live on different backends (${backend.name} and ${x.backend.name})`,
      );
    }
  }
  return backend;
}

function specsOf<P>(op: OpDef<P>, inputs: Tensor[], params: P): OutSpec[] {
  if (op.outputs) return op.outputs(inputs, params);
  if (!op.shape) throw new Error(`${op.name}: an op needs shape() or outputs()`);
  return [{ shape: op.shape(inputs, params), dtype: op.dtype?.(inputs, params) }];
}

/** `t` itself when already row-major at offset 0, else a contiguous copy (no autograd link). */
function rows(t: Tensor): Tensor {
  return t.isContiguous() && t.offset === 0 ? t : engineOps().copy(t);
}

/** Run `op` on `inputs`: every output, saved ones included, in order, with their specs. */
function run<P>(op: OpDef<P>, inputs: Tensor[], params: P): { all: Tensor[]; specs: OutSpec[] } {
  const backend = sameBackend(op.name, inputs);
  if ("view" in op) {
    const { shape, strides, offset } = op.view(inputs[0], params);
    return { all: [inputs[0].withLayout(shape, strides, offset)], specs: [{ shape }] };
  }
  const specs = specsOf(op, inputs, params);
  const args = op.strided ? inputs : inputs.map(rows);
  try {
    if ("compute" in op) return { all: op.compute(args, params), specs };
    const all = specs.map((s) =>
      emptyOn(backend, s.shape, s.dtype ?? inputs[0].dtype, `${op.name} output`)
    );
    if (all.some((o) => o.size > 0)) launch(op, args, all, params);
    return { all, specs };
  } finally {
    args.forEach((a, i) => a !== inputs[i] && a.dispose());
  }
}

/** Apply `op` and return all its outputs but the saved ones (the tape node covers them all). */
export function applyAll<P>(op: OpDef<P>, inputs: Tensor[], params: P): Tensor[] {
  const prof = activeProfile;
  const { all, specs } = prof === null
    ? run(op, inputs, params)
    : prof.op(op.name, () => run(op, inputs, params));
  const shown = all.filter((_, i) => !specs[i].saved);
  const saved = all.filter((_, i) => specs[i].saved);
  const backwardFn = op.backward;
  const wantGrad = isGradEnabled() && inputs.some((x) => x.requiresGrad);
  const diff = backwardFn && wantGrad
    ? all.filter((t, i) => !specs[i].saved && specs[i].grad !== false && isFloat(t.dtype))
    : [];
  if (!backwardFn || diff.length === 0) {
    for (const t of saved) t.dispose();
    return shown;
  }
  const out = shown[0];
  for (const t of diff) t.requiresGrad = true;
  const node = {
    name: op.name,
    inputs,
    outputs: diff,
    backward: (dys: Tensor[]) =>
      backwardFn(dys[0], { inputs, out, outputs: shown, dys, saved, params }),
    release: () => {
      for (const t of saved) t.dispose();
    },
  };
  for (const t of diff) t.node = node;
  return shown;
}

/** Apply `op` to `inputs`: the one entry point every tensor function goes through. */
export function apply<P>(op: OpDef<P>, inputs: Tensor[], params: P): Tensor {
  return applyAll(op, inputs, params)[0];
}

/** The byte range an argument spans in its storage: [first, end). */
function spanOf(a: ArgInfo): [number, number] {
  let lo = a.offset;
  let hi = a.offset;
  for (let d = 0; d < a.shape.length; d++) {
    if (a.shape[d] === 0) return [a.offset, a.offset];
    const step = (a.shape[d] - 1) * a.strides[d];
    if (step < 0) lo += step;
    else hi += step;
  }
  const b = byteSize(a.dtype);
  return [lo * b, (hi + 1) * b];
}

/** Bytes an argument spans in its storage. */
export function spanBytes(a: ArgInfo): number {
  const [lo, hi] = spanOf(a);
  return hi - lo;
}

/**
 * Run a kernel over existing tensors: inputs read, outputs written (in-place updates such as the
 * optimizer's; ops reach here through apply). No shape rule, no autograd. Outputs are written
 * row-major from their offset unless the kernel writes through their strides (cat's slots). A launch whose arguments span
 * more than one binding of the device runs as the pieces of the kernel's split rule.
 */
export function launch<P>(kernel: Kernel<P>, inputs: Tensor[], outputs: Tensor[], params: P): void {
  const prof = activeProfile;
  if (prof === null) return launchOn(kernel, inputs, outputs, params);
  let bytes = 0;
  for (const t of [...inputs, ...outputs]) bytes += spanBytes(argInfo(t));
  prof.launch(kernel.name, bytes, () => launchOn(kernel, inputs, outputs, params));
}

/** `launch` itself: one backend run, or the pieces of the kernel's split rule. */
function launchOn<P>(kernel: Kernel<P>, inputs: Tensor[], outputs: Tensor[], params: P): void {
  const backend = sameBackend(kernel.name, [...inputs, ...outputs]);
  const ins = inputs.map(argInfo);
  const outs = outputs.map(argInfo);
  const bind = (ts: Tensor[], infos: ArgInfo[]): BoundArg[] =>
    infos.map((info, i) => ({ storage: ts[i].ref.storage, info }));
  const { maxBindingBytes: maxBytes, bindingAlign: align } = backend.traits;
  const over = [...ins, ...outs].find((a) => spanBytes(a) > maxBytes);
  if (!over) {
    backend.run(kernel, bind(inputs, ins), bind(outputs, outs), params);
    return;
  }
  const pieces = kernel.split?.(ins, outs, params, { maxBytes, align }) ?? null;
  if (!pieces) {
    throw new DeviceLimitError(
      `${kernel.name}: an argument ${fmtShape(over.shape)} ${over.dtype} spans ` +
        `${spanBytes(over)} bytes (${mib(spanBytes(over))}), over the device's binding limit ` +
        `of ${maxBytes} bytes (${mib(maxBytes)}), and the kernel cannot be cut into pieces ` +
        `for it; use a smaller shape (batch × time for activations) or another backend`,
    );
  }
  for (const piece of pieces) {
    checkPiece(kernel.name, piece, maxBytes);
    backend.run(kernel, bind(inputs, piece.inputs), bind(outputs, piece.outputs), piece.params);
  }
}

function checkPiece<P>(name: string, piece: LaunchPiece<P>, maxBytes: number): void {
  for (const a of [...piece.inputs, ...piece.outputs]) {
    if (spanBytes(a) > maxBytes) {
      throw new Error(`${name}: split produced a piece of ${spanBytes(a)} bytes (> ${maxBytes})`);
    }
  }
}

/** A contiguous copy of `t` (no autograd link). */
export function copyOf(t: Tensor): Tensor {
  return engineOps().copy(t);
}
