// defineOp/apply: how a kernels/ file turns a Kernel into a differentiable tensor function. apply
// checks backends, computes the output shape, makes inputs contiguous unless the kernel reads
// strides itself, runs the kernel, and records a tape node when a gradient can flow.

import type { ArgInfo, BoundArg, CpuArg, Kernel, WgslLaunch } from "./backend.ts";
import type { DType, TypedArray } from "./dtype.ts";
import { byteSize, isFloat, wgslType } from "./dtype.ts";
import { isGradEnabled } from "./autograd.ts";
import { contiguousStrides, sizeOf } from "./shape.ts";
import { gatherStrided, StorageRef, Tensor } from "./tensor.ts";
import {
  grid1d,
  isPlain,
  linearIndex,
  stridedRank,
  stridedStruct,
  stridedUniforms,
  WORKGROUP_SIZE,
} from "./webgpu/codegen.ts";

/** Everything one op is: its kernel, shape rule, output dtype and backward. */
export interface OpDef<P> extends Kernel<P> {
  /** Output shape; throws ShapeError naming the op on bad inputs. */
  shape(inputs: Tensor[], params: P): number[];
  /** Output dtype (default: the first input's). */
  dtype?(inputs: Tensor[], params: P): DType;
  /** The kernel reads arbitrary strides/offsets itself (default false: inputs made contiguous). */
  strided?: boolean;
  /** Gradients of the inputs from the output's gradient; fresh tensors, dy, or views of them. */
  backward?(dy: Tensor, inputs: Tensor[], out: Tensor, params: P): (Tensor | null)[];
}

/** Identity helper that types an op definition. */
export function defineOp<P>(def: OpDef<P>): OpDef<P> {
  return def;
}

/** Layout of a tensor as a kernel argument. */
export function argInfo(t: Tensor): ArgInfo {
  return { shape: t.shape, strides: t.strides, offset: t.offset, dtype: t.dtype };
}

function bind(t: Tensor): BoundArg {
  t.assertAlive("op input");
  return { storage: t.ref.storage, info: argInfo(t) };
}

/** Allocate an output tensor on `like`'s backend. */
export function empty(like: Tensor, shape: readonly number[], dtype: DType = like.dtype): Tensor {
  const storage = like.backend.alloc(sizeOf(shape), dtype);
  return new Tensor(new StorageRef(like.backend, storage), [...shape]);
}

/** Apply `op` to `inputs`: the one entry point every tensor function goes through. */
export function apply<P>(op: OpDef<P>, inputs: Tensor[], params: P): Tensor {
  const backend = inputs[0].backend;
  for (const x of inputs) {
    x.assertAlive(op.name);
    if (x.backend !== backend) {
      throw new Error(
        `${op.name}: inputs live on different backends (${backend.name} and ${x.backend.name})`,
      );
    }
  }
  const shape = op.shape(inputs, params);
  const dtype = op.dtype?.(inputs, params) ?? inputs[0].dtype;
  const args = op.strided ? inputs : inputs.map((x) => materialize(x));
  const out = empty(inputs[0], shape, dtype);
  if (out.size > 0) backend.run(op, args.map(bind), [bind(out)], params);
  args.forEach((a, i) => a !== inputs[i] && a.dispose());
  const backwardFn = op.backward;
  if (backwardFn && isGradEnabled() && isFloat(dtype) && inputs.some((x) => x.requiresGrad)) {
    out.requiresGrad = true;
    out.node = {
      name: op.name,
      inputs,
      backward: (dy) => backwardFn(dy, inputs, out, params),
    };
  }
  return out;
}

/** `t` itself when already row-major at offset 0, else a contiguous copy (no autograd link). */
function materialize(t: Tensor): Tensor {
  if (t.isContiguous() && t.offset === 0) return t;
  const out = empty(t, t.shape);
  if (out.size > 0) t.backend.run(copyKernel, [bind(t)], [bind(out)], undefined);
  return out;
}

/** Read a CPU argument as row-major data of its own shape (no copy when already so). */
export function cpuContiguous(a: CpuArg): TypedArray {
  if (isPlain(a, a.shape)) {
    return a.data.length === sizeOf(a.shape) ? a.data : a.data.subarray(0, sizeOf(a.shape));
  }
  return gatherStrided(a.data, a.shape, a.strides, a.offset, a.dtype);
}

/**
 * The strided copy: out[i] = in[addr(i)], out row-major. One invocation per element; reads views
 * (any strides, stride 0 for broadcast) through the uniform block of codegen.ts.
 */
export const copyKernel: Kernel<void> = {
  name: "copy",
  cpu([x], [y]) {
    y.set(cpuContiguous(x));
  },
  wgsl([x], [y]): WgslLaunch {
    const t = wgslType(x.dtype);
    return {
      source: `${stridedStruct(1, stridedRank(y.shape, [x]))}
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  y[i] = x[addr_0(i)];
}`,
      grid: grid1d(sizeOf(y.shape)),
      uniforms: stridedUniforms(y.shape, [x]),
    };
  },
};

/** A contiguous copy of `t` (no autograd link). */
export function copyOf(t: Tensor): Tensor {
  const out = empty(t, t.shape);
  if (out.size > 0) t.backend.run(copyKernel, [bind(t)], [bind(out)], undefined);
  return out;
}

/** Bytes a tensor of this shape and dtype takes. */
export function bytesOf(shape: readonly number[], dtype: DType): number {
  return sizeOf(shape) * byteSize(dtype);
}

export { contiguousStrides };

/**
 * Run a kernel writing into existing tensors (in-place updates such as the optimizer's): no
 * shape rule, no autograd. Outputs must be row-major at offset 0.
 */
export function launch<P>(kernel: Kernel<P>, inputs: Tensor[], outputs: Tensor[], params: P): void {
  const backend = (inputs[0] ?? outputs[0]).backend;
  for (const t of [...inputs, ...outputs]) {
    t.assertAlive(kernel.name);
    if (t.backend !== backend) throw new Error(`${kernel.name}: tensors on different backends`);
  }
  for (const o of outputs) {
    if (!o.isContiguous() || o.offset !== 0) {
      throw new Error(`${kernel.name}: in-place output must be contiguous at offset 0`);
    }
  }
  backend.run(kernel, inputs.map(bind), outputs.map(bind), params);
}
