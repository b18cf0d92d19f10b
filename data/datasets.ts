// Datasets: a name ("shakespeare", "astro") or a path to a UTF-8 text file. Named datasets are
// looked up in $BITGPT_DATA_DIR, then ./data/, then downloaded once into ./data/ (through a
// temporary file and a rename, so an interrupted download never leaves a partial file).

import { DataError } from "./errors.ts";

/** A dataset known by name: its file name and where to download it from. */
export interface KnownDataset {
  /** File name in a data directory. */
  file: string;
  /** Where to fetch it when no data directory has it. */
  url: string;
}

/** The datasets that can be named instead of given as a path. */
export const KNOWN_DATASETS: Readonly<Record<string, KnownDataset>> = {
  shakespeare: {
    file: "shakespeare.txt",
    url:
      "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
  },
  astro: {
    file: "astro.txt",
    url: "https://raw.githubusercontent.com/bananya-ml/BitGPT/main/data/astro.txt",
  },
};

/** Where `resolveDataset` looks; every field has a default for normal use. */
export interface ResolveOptions {
  /** First directory searched; default `$BITGPT_DATA_DIR` (none if unset or not permitted). */
  dataDir?: string | null;
  /** Second directory searched, and where downloads go; default "./data". */
  localDir?: string;
  /** Download a named dataset that no directory has; default true. */
  download?: boolean;
  /** The fetch used to download (tests pass a fake); default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** `$BITGPT_DATA_DIR`, or undefined when unset or when env access is not permitted. */
export function envDataDir(): string | undefined {
  try {
    return Deno.env.get("BITGPT_DATA_DIR") || undefined;
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new DataError(`cannot read '${path}': ${(e as Error).message}`);
  }
}

function join(dir: string, file: string): string {
  return /[\\/]$/.test(dir) ? `${dir}${file}` : `${dir}/${file}`;
}

/**
 * The path of a dataset's text file. A known name is searched for in `dataDir`, then
 * `localDir`, then downloaded into `localDir`; anything else is a path that must exist.
 */
export async function resolveDataset(
  nameOrPath: string,
  opts: ResolveOptions = {},
): Promise<string> {
  const known = Object.hasOwn(KNOWN_DATASETS, nameOrPath) ? KNOWN_DATASETS[nameOrPath] : undefined;
  if (!known) {
    if (await isFile(nameOrPath)) return nameOrPath;
    throw new DataError(
      `dataset '${nameOrPath}' not found: give ${
        Object.keys(KNOWN_DATASETS).map((k) => `'${k}'`).join(" or ")
      }, or the path of a UTF-8 text file`,
    );
  }
  const dataDir = opts.dataDir === undefined ? envDataDir() : opts.dataDir ?? undefined;
  const localDir = opts.localDir ?? "./data";
  const dirs = dataDir ? [dataDir, localDir] : [localDir];
  for (const dir of dirs) {
    const path = join(dir, known.file);
    if (await isFile(path)) return path;
  }
  const target = join(localDir, known.file);
  const where = dirs.map((d) => `'${d}'`).join(" or ");
  if (opts.download === false) {
    throw new DataError(
      `dataset '${nameOrPath}': ${known.file} is not in ${where}; download ${known.url} to ${target}`,
    );
  }
  try {
    await download(known.url, localDir, target, opts.fetch ?? globalThis.fetch);
  } catch (e) {
    throw new DataError(
      `dataset '${nameOrPath}': ${known.file} is not in ${where} and downloading ${known.url} ` +
        `failed (${(e as Error).message}); put the file at ${target} or set BITGPT_DATA_DIR`,
    );
  }
  return target;
}

/** Fetch `url` into `target` (in `dir`) through a temporary file in the same directory. */
async function download(
  url: string,
  dir: string,
  target: string,
  fetchFn: typeof fetch,
): Promise<void> {
  const res = await fetchFn(url);
  if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length === 0) throw new Error("the server sent an empty file");
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${target}.download-${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, target);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Decode a text file's bytes, refusing empty files and invalid UTF-8 with the offending offset. */
export function decodeText(bytes: Uint8Array, path: string): string {
  if (bytes.length === 0) {
    throw new DataError(`dataset file '${path}' is empty; a dataset needs some UTF-8 text`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const where = at === bytes.length
      ? "the file ends inside a character"
      : `first bad byte at offset ${at}`;
    throw new DataError(
      `dataset file '${path}' is not valid UTF-8 (${where}); convert it to UTF-8 text`,
    );
  }
}

/** Read and decode a dataset's text file (see `decodeText`). */
export async function readDatasetText(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new DataError(`cannot read dataset file '${path}': ${(e as Error).message}`);
  }
  return decodeText(bytes, path);
}

/** Offset of the first byte where `bytes` stops being valid UTF-8 (for the error message). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let lo = 0; // bytes[0, lo) known valid as a prefix (binary search over prefix lengths)
  let hi = bytes.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    try {
      // A streaming decode accepts a character cut at the end, so only real errors throw.
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}
