// Memory scopes: `tidy(fn)` disposes every tensor created inside `fn` except what it returns and
// what was `keep()`-ed. Parameters and optimizer state are created outside scopes or kept.

import type { Tensor } from "./tensor.ts";

const scopes: Set<Tensor>[] = [];

/** Register a new tensor with the innermost scope (called by the Tensor constructor). */
export function trackTensor(t: Tensor): void {
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}

/** Exempt a tensor from every enclosing scope: it lives until `dispose()`. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** Collect the tensors in a tidy result (a tensor, or arrays/objects of them, one level deep). */
function resultTensors(r: unknown, isTensor: (x: unknown) => x is Tensor): Tensor[] {
  if (isTensor(r)) return [r];
  const out: Tensor[] = [];
  if (Array.isArray(r)) {
    for (const x of r) if (isTensor(x)) out.push(x);
  } else if (r !== null && typeof r === "object") {
    for (const x of Object.values(r)) if (isTensor(x)) out.push(x);
  }
  return out;
}

/**
 * Run `fn` and dispose the tensors it created, except those it returns (a tensor, or an array or
 * object holding tensors), which move to the enclosing scope. `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) {
    throw new Error("tidy: the function must be synchronous (it returned a Promise)");
  }
  const survivors = new Set(
    resultTensors(result, (x): x is Tensor => x !== null && scope.has(x as Tensor)),
  );
  for (const t of scope) {
    if (survivors.has(t)) trackTensor(t);
    else t.dispose();
  }
  return result;
}

/** Number of tensors tracked by open scopes (for tests). */
export function trackedCount(): number {
  let n = 0;
  for (const s of scopes) n += s.size;
  return n;
}
