// Module and Parameter, after torch.nn.Module: parameters and submodules registered under names
// (dotted paths, registration order), train/eval mode, state dicts with strict checking, moving a
// model between backends, and disposal. Parameters live outside memory scopes until disposed.

import type { Backend } from "../engine/backend.ts";
import { fmtShape } from "../engine/errors.ts";
import { keep } from "../engine/scope.ts";
import { sameShape } from "../engine/shape.ts";
import { StorageRef, Tensor } from "../engine/tensor.ts";
import { contiguous } from "../kernels/mod.ts";
import {
  assign,
  listNames,
  type LoadOptions,
  StateDictError,
  type StateValue,
  toDType,
} from "./state_dict.ts";

export { StateDictError } from "./state_dict.ts";
export type { HostArray, LoadOptions, StateValue } from "./state_dict.ts";

/** A trainable tensor: requires grad, row-major, and survives every `tidy` until disposed. */
export class Parameter extends Tensor {
  /** Wrap `t`'s storage (a contiguous copy is made first when `t` is a strided view). */
  constructor(t: Tensor) {
    const c = t.isContiguous() && t.offset === 0 ? t : contiguous(t);
    c.ref.retain();
    super(c.ref, [...c.shape]);
    if (c !== t) c.dispose();
    this.requiresGrad = true;
    keep(this);
  }
}

/** Make `t` a Parameter, taking ownership of it (`t` is disposed; the storage is shared). */
export function parameter(t: Tensor): Parameter {
  const p = new Parameter(t);
  t.dispose();
  return p;
}

/** A neural-network building block holding named parameters, buffers and submodules. */
export class Module {
  /** Training mode (dropout active) or evaluation mode. */
  training = true;
  #params = new Map<string, Parameter>();
  #buffers = new Map<string, Tensor>();
  #modules = new Map<string, Module>();

  /** Register a parameter (a Tensor is wrapped; the same Parameter twice ties the weights). */
  protected addParameter(name: string, t: Tensor): Parameter {
    this.#checkName(name);
    const p = t instanceof Parameter ? t : parameter(t);
    this.#params.set(name, p);
    return p;
  }

  /** Register a non-trainable tensor that is moved and disposed with the module (not saved). */
  protected addBuffer(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    this.#buffers.set(name, keep(t));
    return t;
  }

  /** Register a submodule under `name` (its parameters become `name.…`). */
  protected addModule<M extends Module>(name: string, m: M): M {
    this.#checkName(name);
    this.#modules.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (!name || name.includes(".")) throw new Error(`Module: invalid name '${name}'`);
    if (this.#params.has(name) || this.#modules.has(name) || this.#buffers.has(name)) {
      throw new Error(`Module: '${name}' is already registered`);
    }
  }

  /** This module's own parameter `name` (throws when absent). */
  param(name: string): Parameter {
    const p = this.#params.get(name);
    if (!p) throw new Error(`${this.constructor.name}: no parameter '${name}'`);
    return p;
  }

  /** This module's own parameter `name`, or null when it was not registered. */
  maybeParam(name: string): Parameter | null {
    return this.#params.get(name) ?? null;
  }

  /** This module's own buffer `name` (throws when absent). */
  buffer(name: string): Tensor {
    const b = this.#buffers.get(name);
    if (!b) throw new Error(`${this.constructor.name}: no buffer '${name}'`);
    return b;
  }

  /** Every module in the tree, depth first, with its dotted path ("" for this one). */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.#modules) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Every (name, parameter) pair, including tied aliases (as PyTorch's state_dict keys). */
  #allNamedParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [n, p] of m.#params) out.push([path ? `${path}.${n}` : n, p]);
    }
    return out;
  }

  /** Unique parameters with their first-registered dotted names, in registration order. */
  namedParameters(): [string, Parameter][] {
    const seen = new Set<Parameter>();
    return this.#allNamedParameters().filter(([, p]) => !seen.has(p) && !!seen.add(p));
  }

  /** Unique parameters in registration order. */
  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Names that alias an earlier parameter (tied weights), mapped to the primary name. */
  tiedNames(): Record<string, string> {
    const first = new Map<Parameter, string>();
    const out: Record<string, string> = {};
    for (const [n, p] of this.#allNamedParameters()) {
      const primary = first.get(p);
      if (primary === undefined) first.set(p, n);
      else out[n] = primary;
    }
    return out;
  }

  /** Number of parameter elements (each tied tensor counted once). */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Switch this module and its descendants to training (`true`) or evaluation mode. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Switch to evaluation mode (dropout off). */
  eval(): this {
    return this.train(false);
  }

  /** Parameters by dotted name, tied aliases included (the tensors themselves, not copies). */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, p] of this.#allNamedParameters()) out[n] = p;
    return out;
  }

  /**
   * Copy values into the parameters in place. A tied alias may stand in for its primary name.
   * Throws StateDictError listing missing and unexpected names (when strict) and every shape
   * mismatch. Tensors on another backend must be CPU tensors or host `{ shape, data }`.
   */
  loadStateDict(dict: Record<string, StateValue>, { strict = true }: LoadOptions = {}): void {
    const all = this.#allNamedParameters();
    const known = new Set(all.map(([n]) => n));
    const tied = this.tiedNames();
    const aliasesOf = new Map<string, string[]>();
    for (const [alias, primary] of Object.entries(tied)) {
      aliasesOf.set(primary, [...(aliasesOf.get(primary) ?? []), alias]);
    }
    const missing: string[] = [];
    const badShape: string[] = [];
    const plan: [Parameter, StateValue, string][] = [];
    for (const [name, p] of this.namedParameters()) {
      const key = [name, ...(aliasesOf.get(name) ?? [])].find((k) => Object.hasOwn(dict, k));
      if (key === undefined) {
        missing.push(name);
        continue;
      }
      const v = dict[key];
      if (!sameShape(v.shape, p.shape)) {
        badShape.push(`${key}: given ${fmtShape(v.shape)}, model has ${fmtShape(p.shape)}`);
        continue;
      }
      if (!(v instanceof Tensor) && v.data.length !== p.size) {
        badShape.push(`${key}: ${v.data.length} values for shape ${fmtShape(p.shape)}`);
        continue;
      }
      plan.push([p, v, key]);
    }
    const unexpected = Object.keys(dict).filter((k) => !known.has(k));
    const problems: string[] = [];
    if (strict && missing.length) problems.push(`missing ${listNames(missing)}`);
    if (strict && unexpected.length) problems.push(`unexpected ${listNames(unexpected)}`);
    if (badShape.length) problems.push(`shape mismatch ${listNames(badShape, 4)}`);
    if (problems.length) {
      throw new StateDictError(
        `loadStateDict: the state dict does not fit this ${this.constructor.name}: ` +
          `${problems.join("; ")}`,
      );
    }
    for (const [p, v, key] of plan) assign(p, v, key);
  }

  /**
   * Move every parameter and buffer to `backend` (tied weights stay tied; gradients are
   * dropped). f64 tensors become f32 on webgpu. Returns this module.
   */
  async to(backend: Backend): Promise<this> {
    const moved = new Map<Tensor, Tensor>();
    const modules = this.namedModules().map(([, m]) => m);
    for (const m of modules) {
      for (const t of [...m.#params.values(), ...m.#buffers.values()]) {
        if (moved.has(t) || t.backend === backend) continue;
        const dtype = backend.name === "webgpu" && t.dtype === "f64" ? "f32" : t.dtype;
        const data = toDType(await t.data(), dtype);
        const nt = new Tensor(new StorageRef(backend, backend.upload(data, dtype)), [...t.shape]);
        moved.set(t, t instanceof Parameter ? parameter(nt) : keep(nt));
      }
    }
    for (const m of modules) {
      for (const [n, p] of m.#params) {
        const np = moved.get(p);
        if (np) m.#params.set(n, np as Parameter);
      }
      for (const [n, b] of m.#buffers) {
        const nb = moved.get(b);
        if (nb) m.#buffers.set(n, nb);
      }
    }
    for (const old of moved.keys()) {
      old.grad?.dispose();
      old.dispose();
    }
    return this;
  }

  /** Drop every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Release every parameter, gradient and buffer; the module is unusable afterwards. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const p of m.#params.values()) {
        p.grad?.dispose();
        p.grad = null;
        p.dispose();
      }
      for (const b of m.#buffers.values()) b.dispose();
    }
  }
}

/** A list of modules registered as `0`, `1`, … (PyTorch's ModuleList). */
export class ModuleList<M extends Module> extends Module {
  /** The modules, in order. */
  readonly items: M[];
  /** Register `items` as children `0`, `1`, …. */
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.addModule(String(i), m));
  }
  /** Number of modules. */
  get length(): number {
    return this.items.length;
  }
}
