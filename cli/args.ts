// A strict `--flag value` parser driven by a table of flag specs: every flag has a type, a
// default and a help line; unknown flags, missing values and values of the wrong type are
// one-line `FlagError`s, and `--help` is generated from the same table, so it cannot drift.

import { BACKEND_CHOICES, type BackendChoice } from "../engine/device.ts";
import { ConfigError } from "../engine/errors.ts";
import type { Setting, SettingKind } from "../models/config.ts";

/** A bad command line: one line saying which flag and what was expected. */
export class FlagError extends ConfigError {
  /** Always "FlagError". */
  override name = "FlagError";
}

/** How a flag's value is read (a setting's kind: models/config.ts). */
export type FlagKind = SettingKind;

/** One flag: a setting (its config key, `--name`, aliases, type, help line, visibility). */
export type FlagSpec<C> = Setting<C>;

/** The device settings of every command. */
export interface DeviceFlags {
  /** Compute backend: auto (a hardware GPU, else wasm), webgpu, wasm or cpu. */
  backend: BackendChoice;
  /** Threads of the wasm backend, the calling thread included; 0 = the machine's cores. */
  threads: number;
}

/** `--backend` and `--threads`, as `train` and `generate` both take them. */
export const DEVICE_FLAGS: readonly FlagSpec<DeviceFlags>[] = [
  {
    key: "backend",
    name: "backend",
    kind: { type: "choice", choices: BACKEND_CHOICES },
    help: "compute backend (auto: a hardware GPU, else wasm; webgpu takes a software adapter)",
  },
  {
    key: "threads",
    name: "threads",
    kind: { type: "int", min: 0, max: 256 },
    help: "threads of the wasm backend; 0 = the machine's cores",
  },
];

/** The result of parsing a command line: a config, or a request for help. */
export type Parsed<C> =
  | { help: true; text: string }
  | { help: false; config: C; explicit: Partial<C> };

/** Values given explicitly on the command line, by config key, plus whether `--help` was asked. */
export interface ParsedFlags {
  /** Explicit values keyed by config field. */
  values: Record<string, unknown>;
  /** True when `--help` or `-h` appeared. */
  help: boolean;
}

const BOOL_WORDS: Record<string, boolean> = {
  true: true,
  false: false,
  "1": true,
  "0": false,
  yes: true,
  no: false,
  on: true,
  off: false,
};

/** Edit distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
    }
  }
  return d[a.length][b.length];
}

function suggest<C>(name: string, specs: readonly FlagSpec<C>[]): string {
  let best = "";
  let bestD = Infinity;
  for (const s of specs) {
    for (const n of [s.name, ...(s.aliases ?? [])]) {
      const d = distance(name, n);
      if (d < bestD) [best, bestD] = [s.name, d];
    }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? `; did you mean --${best}?` : "";
}

/** Parse `raw` as the value of `spec`, or throw a FlagError naming the flag. */
export function parseValue<C>(spec: FlagSpec<C>, raw: string): unknown {
  const flag = `--${spec.name}`;
  const k = spec.kind;
  switch (k.type) {
    case "int": {
      const v = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(v)) {
        throw new FlagError(`${flag}: expected an integer, got '${raw}'`);
      }
      checkRange(flag, v, k.min, k.max, false, false);
      return v;
    }
    case "float": {
      const v = raw.trim() === "" ? NaN : Number(raw);
      if (!Number.isFinite(v)) throw new FlagError(`${flag}: expected a number, got '${raw}'`);
      checkRange(flag, v, k.min, k.max, k.minExclusive ?? false, k.maxExclusive ?? false);
      return v;
    }
    case "bool": {
      const v = BOOL_WORDS[raw.toLowerCase()];
      if (v === undefined) throw new FlagError(`${flag}: expected true or false, got '${raw}'`);
      return v;
    }
    case "string":
      return raw;
    case "choice":
      if (!k.choices.includes(raw)) {
        throw new FlagError(`${flag}: expected one of ${k.choices.join(", ")}; got '${raw}'`);
      }
      return raw;
    default:
      throw new Error(`unknown flag kind ${JSON.stringify(k satisfies never)}`);
  }
}

function checkRange(
  flag: string,
  v: number,
  min: number | undefined,
  max: number | undefined,
  minExclusive: boolean,
  maxExclusive: boolean,
): void {
  if (min !== undefined && (minExclusive ? v <= min : v < min)) {
    const what = min === 0 && minExclusive
      ? "greater than 0"
      : min === 0
      ? "0 or more"
      : min === 1
      ? "at least 1"
      : `${minExclusive ? "greater than" : "at least"} ${min}`;
    throw new FlagError(`${flag}: must be ${what}, got ${v}`);
  }
  if (max !== undefined && (maxExclusive ? v >= max : v > max)) {
    throw new FlagError(
      `${flag}: must be ${maxExclusive ? "less than" : "at most"} ${max}, got ${v}`,
    );
  }
}

/**
 * Parse `argv` against `specs`: `--name value`, `--name=value`, and for booleans a bare
 * `--name` meaning true. Returns only what was given; defaults are the caller's.
 */
export function parseFlags<C>(
  command: string,
  specs: readonly FlagSpec<C>[],
  argv: readonly string[],
): ParsedFlags {
  const byName = new Map<string, FlagSpec<C>>();
  for (const s of specs) for (const n of [s.name, ...(s.aliases ?? [])]) byName.set(n, s);
  const values: Record<string, unknown> = {};
  const seen = new Map<string, string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "--") {
      throw new FlagError(
        `${command}: unexpected argument '${arg}'; flags are written --name value (see --help)`,
      );
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) {
      throw new FlagError(`${command}: unknown flag --${name}${suggest(name, specs)} (see --help)`);
    }
    if (seen.has(spec.key)) {
      throw new FlagError(`${command}: --${spec.name} given twice (as ${seen.get(spec.key)})`);
    }
    seen.set(spec.key, `--${name}`);
    let raw: string;
    if (eq >= 0) {
      raw = arg.slice(eq + 1);
    } else if (spec.kind.type === "bool") {
      // A bare boolean flag means true; a following word (not a flag) is its value.
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("-")) raw = argv[++i];
      else raw = "true";
    } else {
      const next = argv[i + 1];
      // A following flag is not a value, but a negative number is (it then fails range checks).
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        throw new FlagError(`--${spec.name}: missing value (see --help)`);
      }
      raw = argv[++i];
    }
    values[spec.key] = parseValue(spec, raw);
  }
  return { values, help };
}

/** How a default value prints in `--help` and in the config listing. */
export function showValue(v: unknown): string {
  if (typeof v === "string") return v === "" ? "''" : v;
  if (v === null || v === undefined) return "auto";
  if (typeof v === "number" && v !== 0 && Math.abs(v) < 1e-3) return v.toExponential();
  return String(v);
}

function metavar<C>(spec: FlagSpec<C>): string {
  const k = spec.kind;
  switch (k.type) {
    case "int":
      return "N";
    case "float":
      return "X";
    case "bool":
      return "[true|false]";
    case "string":
      return "S";
    case "choice":
      return k.choices.join("|");
  }
}

/** The `--help` text: usage line, then one line per flag with its default. */
export function helpText<C>(
  usage: string,
  specs: readonly FlagSpec<C>[],
  defaults: C,
  footer = "",
): string {
  const rows = specs.map((s) => {
    const names = [s.name, ...(s.aliases ?? [])].map((n) => `--${n}`).join(", ");
    const d = defaults[s.key];
    const shown = s.kind.type === "float" && Number.isInteger(d)
      ? (d as number).toFixed(1)
      : showValue(d);
    return [`  ${names} ${metavar(s)}`, `${s.help} (default: ${shown})`];
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  const lines = rows.map(([l, r]) => l.padEnd(width) + r);
  return [usage, "", "Flags:", ...lines, "  --help, -h".padEnd(width) + "show this help and exit"]
    .join("\n") + (footer ? `\n\n${footer}` : "") + "\n";
}

/** `key = value` lines of a config, the tunable flags only (level 1) or all (level 2). */
export function configLines<C>(specs: readonly FlagSpec<C>[], config: C, level: number): string[] {
  if (level <= 0) return [];
  return specs
    .filter((s) => level >= 2 || s.tunable)
    .map((s) => `  ${s.name.padEnd(16)} ${showValue(config[s.key])}`);
}
