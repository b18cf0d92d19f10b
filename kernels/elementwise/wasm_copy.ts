// The wasm strided copy y = x (copy, cat's slot copies, pad's block), any 4-byte dtype bit for
// bit: transposes in 4×4 register tiles (wasm_transpose.ts), every other layout through the
// elementwise loop of wasm.ts with an identity body (contiguous runs as v128, broadcasts as
// splats, strided operands lane by lane). Memory-bound (the bench: a [768, 128] transpose in
// ~20 µs, attention's head permute of [12, 64, 4, 32] in ~37 µs on one thread).

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import { runElementwise, vexpr } from "./wasm.ts";
import { runTranspose } from "./wasm_transpose.ts";

/** y = x, bit for bit. */
const IDENTITY = vexpr((_e, x) => x);

/** Copy x into y (same shape; y written through its strides, which may be a slot's). */
export function runCopy(ctx: WasmContext, name: string, x: WasmArg, y: WasmArg): void {
  if (runTranspose(ctx, x, y)) return;
  runElementwise(ctx, name, [{ arg: x, role: "in" }, { arg: y, role: "out" }], IDENTITY);
}
