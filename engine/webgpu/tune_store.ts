// Autotuning decisions kept across runs, so only the first run on an adapter pays for compiling
// and timing every candidate. One Web Storage item per shape class, under a scope naming the
// adapter and the runtime, holding the winner's name and a fingerprint of all candidates' names
// and WGSL: a changed kernel, candidate list, adapter, driver or runtime retunes by itself.
// The store is `localStorage`, the one persistent web-standard store that is synchronous and
// exists in both Deno and browsers: Deno keeps it per config file, else per main module (or per
// `--location`), with no permission flag, so a library imported from a URL shares the store of
// the program that imports it; a page keeps it per origin. Where it is missing or refuses
// (workers, opaque origins, a full quota) decisions last for the process only.

/** The part of the Web Storage API the tuner uses (`localStorage` or a test double). */
export interface TuneStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Bump when the stored record's format changes. */
export const TUNE_STORE_VERSION = 1;
const PREFIX = `bitgpt.autotune.v${TUNE_STORE_VERSION}`;

/** This runtime's `localStorage`, or null where there is none or it may not be used. */
export function defaultTuneStore(): TuneStore | null {
  try {
    const s = (globalThis as { localStorage?: TuneStore }).localStorage;
    return s ?? null;
  } catch {
    return null; // a SecurityError in opaque origins
  }
}

/** The adapter and runtime that decisions are valid for. */
export function tuneScope(info: GPUAdapterInfo): string {
  const ua = typeof navigator !== "undefined" ? navigator.userAgent ?? "" : "";
  return [info.vendor, info.architecture, info.device, info.description, ua].join("/");
}

/** FNV-1a over the candidates' names and sources, as 8 hex digits. */
export function fingerprint(parts: readonly string[]): string {
  let h = 0x811c9dc5;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) {
      h ^= part.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0xff; // a separator, so ["ab", "c"] and ["a", "bc"] differ
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** A stored decision: the winner's name under a fingerprint of the candidates. */
interface TuneRecord {
  fp: string;
  chosen: string;
}

/** Decisions of one scope in a store; failures to read or write are ignored. */
export class TuneMemo {
  constructor(readonly store: TuneStore, readonly scope: string) {}

  #item(key: string): string {
    return `${PREFIX}|${this.scope}|${key}`;
  }

  /** The stored winner for `key` if it was decided over candidates with fingerprint `fp`. */
  get(key: string, fp: string): string | null {
    try {
      const raw = this.store.getItem(this.#item(key));
      const rec = raw ? (JSON.parse(raw) as Partial<TuneRecord>) : null;
      return rec?.fp === fp && typeof rec.chosen === "string" ? rec.chosen : null;
    } catch {
      return null;
    }
  }

  /** Remember that `chosen` won for `key` over candidates with fingerprint `fp`. */
  set(key: string, fp: string, chosen: string): void {
    try {
      this.store.setItem(this.#item(key), JSON.stringify({ fp, chosen } satisfies TuneRecord));
    } catch {
      // quota or a read-only store: the decision lasts for this process
    }
  }
}
