// Shared machinery of elementwise kernels: one WGSL template that reads each input through its
// strides (views and broadcasts, stride 0, need no copy) and a CPU helper that lines inputs up
// with the output. Layout: output row-major; one invocation per output element, workgroup 256,
// grid from `grid1d`. Plain inputs (row-major, offset 0, output's shape) are read directly.
// Launches over tensors larger than one binding are cut into rows of the output (splitRows).
// wasm: the op's per-vector code (EwBody) runs in the strided SIMD loop of wasm.ts (collapsed
// dims, contiguous/broadcast/strided classes, ranges of the output split over the threads);
// dtypes the body does not cover run the CPU loop on heap views (cpuOnHeap).

import type { ArgInfo, WgslLaunch } from "../../engine/backend.ts";
import type { DType, TypedArray } from "../../engine/dtype.ts";
import { wgslType } from "../../engine/dtype.ts";
import { type BackwardContext, defineOp, type KernelOp } from "../../engine/op.ts";
import { splitRows } from "../../engine/split.ts";
import { cpuContiguous, type Tensor } from "../../engine/tensor.ts";
import { sizeOf } from "../../engine/shape.ts";
import { cpuOnHeap, type EwBody, runElementwise } from "./wasm.ts";
import {
  grid1d,
  isPlain,
  linearIndex,
  stridedRank,
  stridedStruct,
  stridedUniforms,
  WORKGROUP_SIZE,
} from "../../engine/webgpu/codegen.ts";

/**
 * WGSL for out[i] = `expr` over inputs named `a`, `b`, `c` (in order) and scalars `u.f.x..w`.
 * `helpers` is extra WGSL (functions the expression calls).
 */
export function elementwiseWgsl(
  inputs: ArgInfo[],
  out: ArgInfo,
  expr: string,
  scalars: number[] = [],
  helpers = "",
  outType?: DType,
): WgslLaunch {
  const names = ["a", "b", "c", "d"];
  const decls = inputs.map((x, k) =>
    `@group(0) @binding(${k}) var<storage, read> in_${names[k]}: array<${wgslType(x.dtype)}>;`
  ).join("\n");
  const loads = inputs.map((x, k) =>
    `  let ${names[k]} = in_${names[k]}[${isPlain(x, out.shape) ? "i" : `addr_${k}(i)`}];`
  ).join("\n");
  const n = inputs.length;
  return {
    source: `${stridedStruct(n, stridedRank(out.shape, inputs))}
${decls}
@group(0) @binding(${n}) var<storage, read_write> y: array<${wgslType(outType ?? out.dtype)}>;
@group(0) @binding(${n + 1}) var<uniform> u: U;
${helpers}
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
${loads}
  y[u.yo + i] = ${expr};
}`,
    grid: grid1d(sizeOf(out.shape)),
    uniforms: stridedUniforms(out.shape, inputs, scalars, out.offset),
  };
}

/** What an elementwise op declares; its inputs arrive already broadcast to the output shape. */
export interface ElementwiseSpec<P> {
  /** The op's name. */
  name: string;
  /** WGSL expression over `a`, `b`, `c` (the inputs) and `u.f.x..w` (the scalars). */
  wgsl: string;
  /** Extra WGSL functions the expression calls. */
  helpers?: string;
  /**
   * wasm: the per-vector code (or, per params, a body whose variant names what it bakes in);
   * without it the wasm backend runs `cpu` on heap views (KERNEL_FALLBACK).
   */
  wasm?: EwBody | ((params: P) => EwBody);
  /** Dtypes (inputs, then the output) the wasm body covers; default all f32. */
  wasmDtypes?(dtypes: DType[]): boolean;
  /** CPU loop: y[i] = f(ins[0][i], ...) over row-major inputs of the output's size. */
  cpu(ins: TypedArray[], y: TypedArray, params: P): void;
  /** Scalars for the uniform block (u.f.x, u.f.y, ...). */
  scalars?(params: P): number[];
  /** Output dtype (default: the first input's). */
  dtype?(inputs: Tensor[], params: P): DType;
  /** The inputs' gradients from the output's. */
  backward?(dy: Tensor, ctx: BackwardContext<P>): (Tensor | null)[];
}

const allF32 = (dtypes: DType[]) => dtypes.every((d) => d === "f32");

/** An elementwise op from its expression and CPU loop. */
export function elementwiseOp<P>(spec: ElementwiseSpec<P>): KernelOp<P> {
  const op: KernelOp<P> = defineOp<P>({
    name: spec.name,
    strided: true,
    shape: (inputs) => [...inputs[0].shape],
    dtype: spec.dtype,
    cpu(inputs, [y], params) {
      spec.cpu(inputs.map(cpuContiguous), y, params);
    },
    webgpu(inputs, [y], params) {
      return elementwiseWgsl(inputs, y, spec.wgsl, spec.scalars?.(params) ?? [], spec.helpers);
    },
    wasm: spec.wasm && ((inputs, [y], params, ctx) => {
      const dtypes = [...inputs, y].map((a) => a.dtype);
      if (!(spec.wasmDtypes ?? allF32)(dtypes)) return cpuOnHeap(op, inputs, [y], params, ctx);
      const body = typeof spec.wasm === "function" ? spec.wasm(params) : spec.wasm!;
      const operands = [
        ...inputs.map((arg) => ({ arg, role: "in" as const })),
        { arg: y, role: "out" as const },
      ];
      runElementwise(ctx, spec.name, operands, body, spec.scalars?.(params) ?? []);
    }),
    split: (inputs, outputs, params, limits) =>
      splitRows(inputs, outputs, params, limits, { anyStart: true }),
    backward: spec.backward,
  });
  return op;
}
