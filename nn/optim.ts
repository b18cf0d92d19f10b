// AdamW with decoupled weight decay on parameters of two or more dimensions (nanoGPT's
// configure_optimizers groups), one fused in-place kernel per parameter (kernels/adamw.ts), and
// gradient clipping by global norm computed on the device: the clipping factor stays a device
// tensor that the update kernel multiplies in, so a step never waits on a GPU→CPU readback.

import type { Backend } from "../engine/backend.ts";
import { noGrad } from "../engine/autograd.ts";
import { full, zeros } from "../engine/creation.ts";
import { keep, tidy } from "../engine/scope.ts";
import { allocArray } from "../engine/dtype.ts";
import { launch } from "../engine/op.ts";
import { fmtShape } from "../engine/errors.ts";
import { Tensor } from "../engine/tensor.ts";
import { adamwUpdate } from "../kernels/adamw.ts";
import { add, clamp, copyOp, mul, pow, reshape, scale, shift, sqrt, sum } from "../kernels/mod.ts";
import { type HostArray, Module, type Parameter, StateDictError } from "./module.ts";

/** Hyperparameters of AdamW (defaults: nanoGPT's). */
export interface AdamWOptions {
  /** Learning rate (a schedule overwrites `optimizer.lr` each step). Default 6e-4. */
  lr?: number;
  /** (β1, β2). Default [0.9, 0.95]. */
  betas?: [number, number];
  /** Denominator guard. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay for parameters with ≥ 2 dims (others get 0). Default 0.1. */
  weightDecay?: number;
}

/** An optimizer's state for a checkpoint: step count, hyperparameters, moments by name. */
export interface OptimizerState {
  /** Updates taken. */
  step: number;
  /** Learning rate at the last update. */
  lr: number;
  /** Weight decay for parameters with ≥ 2 dims. */
  weightDecay: number;
  /** Decays of the first and second moment averages. */
  betas: [number, number];
  /** Added to the root of the second moment. */
  eps: number;
  /** `${param}.exp_avg` and `${param}.exp_avg_sq` (PyTorch's names) for every stepped param. */
  tensors: Record<string, Tensor>;
}

interface Moments {
  m: Tensor;
  v: Tensor;
}

/** AdamW over named parameters; moments are created on the first step and kept until dispose. */
export class AdamW {
  /** Current learning rate (set by the schedule before each step). */
  lr: number;
  /** Current weight decay for ≥ 2-dim parameters. */
  weightDecay: number;
  /** Decays of the first and second moment averages. */
  readonly betas: [number, number];
  /** Added to the root of the second moment. */
  readonly eps: number;
  /** Updates taken so far (bias correction uses stepCount after increment). */
  stepCount = 0;
  /** The parameters stepped, with their names (the keys of the optimizer state). */
  readonly named: [string, Parameter][];
  #state = new Map<Parameter, Moments>();
  #ones = new Map<Backend, Tensor>();

  /** Optimize a module's parameters (or an explicit list of named parameters). */
  constructor(params: Module | [string, Parameter][], opts: AdamWOptions = {}) {
    this.named = params instanceof Module ? params.namedParameters() : params;
    this.lr = opts.lr ?? 6e-4;
    this.betas = opts.betas ?? [0.9, 0.95];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.1;
  }

  /** Parameters that receive weight decay (≥ 2 dims) and those that do not. */
  groups(): { decay: [string, Parameter][]; noDecay: [string, Parameter][] } {
    return {
      decay: this.named.filter(([, p]) => p.ndim >= 2),
      noDecay: this.named.filter(([, p]) => p.ndim < 2),
    };
  }

  #one(p: Parameter): Tensor {
    let o = this.#ones.get(p.backend);
    if (!o || o.dtype !== p.dtype) {
      o = keep(full([1], 1, { backend: p.backend, dtype: p.dtype }));
      this.#ones.set(p.backend, o);
    }
    return o;
  }

  #moments(p: Parameter): Moments {
    let s = this.#state.get(p);
    if (!s) {
      const opts = { backend: p.backend, dtype: p.dtype };
      s = { m: keep(zeros(p.shape, opts)), v: keep(zeros(p.shape, opts)) };
      this.#state.set(p, s);
    }
    return s;
  }

  /**
   * Update every parameter that has a gradient, in place. `gradScale` (a 1-element device
   * tensor, e.g. from `clipGradNorm(..., { apply: false })`) multiplies every gradient first.
   */
  step({ gradScale }: { gradScale?: Tensor } = {}): void {
    this.stepCount++;
    for (const [, p] of this.named) {
      if (!p.grad) continue;
      const { m, v } = this.#moments(p);
      adamwUpdate(p, p.grad, m, v, gradScale ?? this.#one(p), {
        lr: this.lr,
        beta1: this.betas[0],
        beta2: this.betas[1],
        eps: this.eps,
        weightDecay: p.ndim >= 2 ? this.weightDecay : 0,
        step: this.stepCount,
      });
    }
  }

  /** Drop the gradients of every optimized parameter. */
  zeroGrad(): void {
    for (const [, p] of this.named) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The state to checkpoint (tensors are the live moments, not copies). */
  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    for (const [name, p] of this.named) {
      const s = this.#state.get(p);
      if (!s) continue;
      tensors[`${name}.exp_avg`] = s.m;
      tensors[`${name}.exp_avg_sq`] = s.v;
    }
    return {
      step: this.stepCount,
      lr: this.lr,
      weightDecay: this.weightDecay,
      betas: [...this.betas],
      eps: this.eps,
      tensors,
    };
  }

  /** Restore a state from `stateDict()` (moments as tensors or host arrays). */
  loadStateDict(
    state: Omit<OptimizerState, "tensors"> & { tensors: Record<string, Tensor | HostArray> },
  ): void {
    const byName = new Map(this.named);
    for (const key of Object.keys(state.tensors)) {
      const name = key.replace(/\.exp_avg(_sq)?$/, "");
      if (!byName.has(name) || name === key) {
        throw new StateDictError(`AdamW.loadStateDict: unexpected entry '${key}'`);
      }
    }
    for (const [name, p] of this.named) {
      const m = state.tensors[`${name}.exp_avg`];
      const v = state.tensors[`${name}.exp_avg_sq`];
      if (!m && !v) continue;
      if (!m || !v) throw new StateDictError(`AdamW.loadStateDict: '${name}' lacks a moment`);
      for (const [k, t] of [["exp_avg", m], ["exp_avg_sq", v]] as const) {
        if (t.shape.length !== p.ndim || t.shape.some((d, i) => d !== p.shape[i])) {
          throw new StateDictError(
            `AdamW.loadStateDict: '${name}.${k}' is ${fmtShape(t.shape)}, the parameter is ${
              fmtShape(p.shape)
            }`,
          );
        }
      }
      const s = this.#moments(p);
      writeInto(s.m, m);
      writeInto(s.v, v);
    }
    this.stepCount = state.step;
    this.lr = state.lr;
    this.weightDecay = state.weightDecay;
  }

  /** Release the moments. */
  dispose(): void {
    for (const s of this.#state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.#state.clear();
    for (const o of this.#ones.values()) o.dispose();
    this.#ones.clear();
  }
}

/** Copy a host array or same-backend tensor of the same dtype into `dst` in place. */
function writeInto(dst: Tensor, src: Tensor | HostArray): void {
  if (src instanceof Tensor) {
    if (src.backend !== dst.backend || src.dtype !== dst.dtype) {
      throw new StateDictError(
        `AdamW.loadStateDict: a moment is ${src.dtype} on ${src.backend.name}, the optimizer ` +
          `needs ${dst.dtype} on ${dst.backend.name}; pass host arrays instead`,
      );
    }
    launch(copyOp, [src], [dst], undefined);
    return;
  }
  const arr = allocArray(dst.dtype, src.data.length);
  arr.set(src.data);
  dst.backend.write(dst.ref.storage, arr);
}

/** Result of clipGradNorm: the global norm and the factor min(1, maxNorm / (norm + 1e-6)). */
export interface ClipResult {
  /** ‖g‖₂ over all gradients (a 0-dim device tensor; read it only at log points). */
  norm: Tensor;
  /** The clipping factor (a 1-element device tensor). */
  scale: Tensor;
}

/**
 * Clip gradients by global L2 norm (torch.nn.utils.clip_grad_norm_), entirely on the device.
 * With `apply` (default) every gradient is multiplied by the factor; with `apply: false` the
 * factor is only returned, for `AdamW.step({ gradScale })` to fuse into the update.
 */
export function clipGradNorm(
  params: Parameter[],
  maxNorm: number,
  { apply = true }: { apply?: boolean } = {},
): ClipResult {
  const withGrad = params.filter((p) => p.grad);
  if (withGrad.length === 0) throw new Error("clipGradNorm: no parameter has a gradient");
  return tidy(() =>
    noGrad(() => {
      let total: Tensor | null = null;
      for (const p of withGrad) {
        const g = p.grad!;
        // Rows first, then the row sums: many workgroups instead of one over the whole tensor.
        const sq = mul(g, g);
        const part = g.ndim >= 2 ? sum(sum(sq, g.shape.map((_, i) => i).slice(1))) : sum(sq);
        total = total ? add(total, part) : part;
      }
      const norm = sqrt(total!);
      const factor = reshape(clamp(scale(pow(shift(norm, 1e-6), -1), maxNorm), 0, 1), [1]);
      if (apply) {
        for (const p of withGrad) {
          const g = p.grad!;
          p.grad = keep(mul(g, factor));
          g.dispose();
        }
      }
      return { norm, scale: factor };
    })
  );
}
