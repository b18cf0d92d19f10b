// Reverse-mode autograd over the define-by-run tape: each op's output holds a Node (inputs plus
// a backward closure); backward() sorts the graph topologically (iteratively, no recursion
// limit), walks it in reverse, accumulates gradients (+=), and frees the graph as it goes.

import type { Tensor } from "./tensor.ts";
import { keep } from "./scope.ts";

let gradEnabled = true;

/** Is the tape recording? */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording the tape (evaluation, sampling, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** The ops autograd itself needs, registered by kernels/ (engine cannot import kernels). */
export interface GradOps {
  add(a: Tensor, b: Tensor): Tensor;
  onesLike(t: Tensor): Tensor;
  /** A contiguous copy (no autograd link). */
  clone(t: Tensor): Tensor;
}

let ops: GradOps | null = null;

/** Called once by kernels/mod.ts. */
export function registerGradOps(o: GradOps): void {
  ops = o;
}

function gradOps(): GradOps {
  if (!ops) throw new Error("autograd: kernels not loaded (import kernels/mod.ts or mod.ts)");
  return ops;
}

/** Tensors reachable from `root` through nodes, inputs before outputs. */
function topoSort(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top[0].node?.inputs ?? [];
    if (top[1] < inputs.length) {
      const x = inputs[top[1]++];
      if (x.requiresGrad && !seen.has(x)) {
        seen.add(x);
        stack.push([x, 0]);
      }
    } else {
      stack.pop();
      order.push(top[0]);
    }
  }
  return order;
}

/**
 * Backpropagate from `root`. `grad` defaults to ones (root must then have one element).
 * Leaves (requiresGrad, no node) receive `.grad` (added to any existing one); the graph is freed.
 * A node's backward returns fresh tensors, `dy` itself, or views of them: intermediate gradients
 * are reference-counted here and disposed as soon as the last consumer has used them.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error("backward: tensor does not require grad (was it made under noGrad?)");
  }
  if (!grad && root.size !== 1) {
    throw new Error(`backward: root has ${root.size} elements; pass a gradient`);
  }
  const { add, onesLike, clone } = gradOps();
  const holders = new Map<Tensor, number>();
  const hold = (g: Tensor) => holders.set(g, (holders.get(g) ?? 0) + 1);
  const drop = (g: Tensor) => {
    const n = holders.get(g)! - 1;
    if (n > 0) return void holders.set(g, n);
    holders.delete(g);
    if (g !== grad) g.dispose();
  };
  const order = topoSort(root);
  const grads = new Map<Tensor, Tensor>();
  const seed = grad ?? onesLike(root);
  grads.set(root, seed);
  hold(seed);
  const wasEnabled = gradEnabled;
  gradEnabled = false; // the backward math is not itself recorded
  try {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const dy = grads.get(t);
      if (!dy) continue;
      grads.delete(t);
      const node = t.node;
      if (!node) {
        // A leaf: accumulate into .grad, which outlives any scope.
        if (t.grad) {
          const old = t.grad;
          t.grad = keep(add(old, dy));
          old.dispose();
        } else if (holders.get(dy) === 1 && dy !== grad) {
          holders.delete(dy); // hand ownership to the leaf
          t.grad = keep(dy);
          continue;
        } else {
          t.grad = keep(clone(dy));
        }
        drop(dy);
        continue;
      }
      const dxs = node.backward(dy);
      t.node = null; // free the graph as we go
      node.inputs.forEach((x, i) => {
        const dx = dxs[i];
        if (!dx || !x.requiresGrad) return;
        hold(dx);
        const prev = grads.get(x);
        if (prev) {
          const sum = add(prev, dx);
          hold(sum);
          grads.set(x, sum);
          drop(prev);
          drop(dx);
        } else {
          grads.set(x, dx);
        }
      });
      for (const dx of dxs) if (dx && !holders.has(dx) && dx !== dy) dx.dispose();
      drop(dy);
    }
  } finally {
    gradEnabled = wasEnabled;
    for (const g of grads.values()) if (g !== grad && holders.has(g)) g.dispose();
  }
}
