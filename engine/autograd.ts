// Reverse-mode autograd over the define-by-run tape: each op that can pass a gradient leaves a
// Node on its outputs (inputs, outputs, a backward closure, the tensors it saved). backward()
// sorts the nodes topologically (iteratively, no recursion limit), walks them in reverse,
// accumulates gradients (+=), and frees the graph and the saved tensors as it goes.

import type { Tensor } from "./tensor.ts";
import { keep } from "./scope.ts";
import { activeProfile } from "./profile.ts";
import { engineOps } from "./registry.ts";

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

/** The record an op leaves on the tape: what it read, what it made, how to send gradients back. */
export interface Node {
  /** The op's name. */
  readonly name: string;
  /** The op's inputs, in order. */
  readonly inputs: readonly Tensor[];
  /** The op's differentiable outputs, in order (each holds this node). */
  readonly outputs: readonly Tensor[];
  /**
   * Gradients of the inputs (null where none flows) from one gradient per output (a zero tensor
   * stands in for an output no gradient reached). Returns fresh tensors, dys, or views of them.
   */
  backward(dys: Tensor[]): (Tensor | null)[];
  /** Free what the op saved for its backward (called once the node is done or dropped). */
  release(): void;
}

/** Nodes reachable from `root` through their inputs, every node after the nodes it reads. */
function topoSort(root: Node): Node[] {
  const order: Node[] = [];
  const seen = new Set<Node>([root]);
  const stack: [Node, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top[0].inputs;
    if (top[1] < inputs.length) {
      const x = inputs[top[1]++];
      if (x.requiresGrad && x.node && !seen.has(x.node)) {
        seen.add(x.node);
        stack.push([x.node, 0]);
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
 * A node's backward returns fresh tensors, a `dy` itself, or views of them: intermediate
 * gradients are reference-counted here and disposed as soon as the last consumer has used them.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error("backward: tensor does not require grad (was it made under noGrad?)");
  }
  if (!grad && root.size !== 1) {
    throw new Error(`backward: root has ${root.size} elements; pass a gradient`);
  }
  const { add, full, copy } = engineOps();
  const holders = new Map<Tensor, number>();
  const hold = (g: Tensor) => holders.set(g, (holders.get(g) ?? 0) + 1);
  const drop = (g: Tensor) => {
    const n = holders.get(g)! - 1;
    if (n > 0) return void holders.set(g, n);
    holders.delete(g);
    if (g !== grad) g.dispose();
  };
  const order = root.node ? topoSort(root.node) : [];
  const grads = new Map<Tensor, Tensor>();
  const leaves: Tensor[] = [];
  /** Add `dx` into `x`'s pending gradient (held once more). */
  const accumulate = (x: Tensor, dx: Tensor) => {
    hold(dx);
    const prev = grads.get(x);
    if (!prev) {
      grads.set(x, dx);
      if (!x.node) leaves.push(x);
      return;
    }
    const sum = add(prev, dx);
    hold(sum);
    grads.set(x, sum);
    drop(prev);
    drop(dx);
  };
  const wasEnabled = gradEnabled;
  gradEnabled = false; // the backward math is not itself recorded
  const prof = activeProfile;
  const t0 = prof?.now() ?? 0;
  prof?.backward(true); // the ops below are reported as the backward pass's
  try {
    accumulate(root, grad ?? full(root.shape, 1, root));
    for (let k = order.length - 1; k >= 0; k--) {
      const node = order[k];
      const got = node.outputs.map((o) => grads.get(o) ?? null);
      for (const o of node.outputs) grads.delete(o);
      for (const o of node.outputs) o.node = null; // free the graph as we go
      if (got.every((g) => g === null)) {
        node.release();
        continue;
      }
      const zeros: Tensor[] = [];
      const dys = got.map((g, i) => {
        if (g) return g;
        const z = full(node.outputs[i].shape, 0, node.outputs[i]); // no gradient reached it
        hold(z);
        zeros.push(z);
        return z;
      });
      const dxs = node.backward(dys);
      node.release();
      node.inputs.forEach((x, i) => {
        const dx = dxs[i];
        if (dx && x.requiresGrad) accumulate(x, dx);
      });
      const flowing = new Set<Tensor>(dys);
      for (const dx of dxs) if (dx && !holders.has(dx) && !flowing.has(dx)) dx.dispose();
      for (const g of [...got, ...zeros]) if (g) drop(g);
    }
    // Leaves: each gradient is final once every node has run; .grad outlives any scope.
    for (const t of leaves) {
      const dy = grads.get(t)!;
      grads.delete(t);
      if (t.grad) {
        const old = t.grad;
        t.grad = keep(add(old, dy));
        old.dispose();
      } else if (holders.get(dy) === 1 && dy !== grad) {
        holders.delete(dy); // hand ownership to the leaf
        t.grad = keep(dy);
        continue;
      } else {
        t.grad = keep(copy(dy));
      }
      drop(dy);
    }
  } finally {
    gradEnabled = wasEnabled;
    for (const g of grads.values()) if (g !== grad && holders.has(g)) g.dispose();
    if (prof) {
      prof.backward(false);
      prof.span({ name: "backward", cat: "phase", start: t0, dur: prof.now() - t0 });
    }
  }
}
