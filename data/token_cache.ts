// Token caches: a text is encoded once and its ids stored next to it as
// `<file>.<tokenizer>.<hash16>.tokens` (hash: SHA-256 of the text and the tokenizer's JSON), or
// under ./data/cache/ when the text's directory is read-only. A cache that fails any check is
// ignored and rewritten; a cache that cannot be written is skipped without error.
//
// File layout, little-endian: "BGTK", u32 version (1), u32 bytes per id (2 or 4),
// u32 vocabSize, u64 count, then `count` ids as u16 (vocabSize <= 65536) or i32.

import { DataError } from "./errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

const MAGIC = [0x42, 0x47, 0x54, 0x4b]; // "BGTK"
const VERSION = 1;
const HEADER_BYTES = 24;

/** How `encodeWithCache` caches; the defaults suit normal use. */
export interface CacheOptions {
  /** Use and write caches at all; default true. */
  enabled?: boolean;
  /** Where caches go when the text's directory is read-only; default "./data/cache". */
  fallbackDir?: string;
}

/** Tokens of a text and where they came from. */
export interface EncodedText {
  /** The ids. */
  tokens: Int32Array;
  /** The cache file read or written, or null when caching was off or impossible. */
  cachePath: string | null;
  /** True when the ids were read from `cachePath` rather than encoded. */
  fromCache: boolean;
}

/** First 16 hex digits of SHA-256(text, NUL, tokenizer JSON): the cache's identity. */
export async function cacheKey(text: string, tokenizer: Tokenizer): Promise<string> {
  const input = new TextEncoder().encode(`${text}\u0000${JSON.stringify(tokenizer.toJSON())}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  return [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Serialise ids in the cache layout (u16 when the vocabulary allows). */
export function encodeTokenFile(tokens: Int32Array, vocabSize: number): Uint8Array {
  const itemBytes = vocabSize <= 65536 ? 2 : 4;
  const out = new Uint8Array(HEADER_BYTES + tokens.length * itemBytes);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, itemBytes, true);
  view.setUint32(12, vocabSize, true);
  view.setBigUint64(16, BigInt(tokens.length), true);
  for (let i = 0; i < tokens.length; i++) {
    if (itemBytes === 2) view.setUint16(HEADER_BYTES + 2 * i, tokens[i], true);
    else view.setInt32(HEADER_BYTES + 4 * i, tokens[i], true);
  }
  return out;
}

/** Parse a cache file, checking header, length and that every id is below `vocabSize`. */
export function decodeTokenFile(bytes: Uint8Array, vocabSize: number): Int32Array {
  const bad = (why: string): never => {
    throw new DataError(`token cache: ${why}`);
  };
  if (bytes.length < HEADER_BYTES) bad(`file is ${bytes.length} bytes, shorter than its header`);
  if (MAGIC.some((m, i) => bytes[i] !== m)) bad("not a token cache (bad magic)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  const itemBytes = view.getUint32(8, true);
  if (version !== VERSION) bad(`version ${version}, expected ${VERSION}`);
  if (itemBytes !== 2 && itemBytes !== 4) bad(`${itemBytes} bytes per id, expected 2 or 4`);
  if (view.getUint32(12, true) !== vocabSize) bad(`written for another vocabulary size`);
  const count = Number(view.getBigUint64(16, true));
  if (bytes.length !== HEADER_BYTES + count * itemBytes) {
    bad(`${count} ids need ${HEADER_BYTES + count * itemBytes} bytes, file has ${bytes.length}`);
  }
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const id = itemBytes === 2
      ? view.getUint16(HEADER_BYTES + 2 * i, true)
      : view.getInt32(HEADER_BYTES + 4 * i, true);
    if (id < 0 || id >= vocabSize) bad(`id ${id} at ${i} is outside [0, ${vocabSize})`);
    out[i] = id;
  }
  return out;
}

function lastSep(path: string): number {
  return Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
}

function dirOf(path: string): string {
  const i = lastSep(path);
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function baseOf(path: string): string {
  return path.slice(lastSep(path) + 1);
}

/** False when the directory's mode has no write bit (read-only even for root), or is missing. */
async function looksWritable(dir: string): Promise<boolean> {
  try {
    const info = await Deno.stat(dir);
    return info.isDirectory && (info.mode === null || (info.mode & 0o222) !== 0);
  } catch {
    return false;
  }
}

/** The cached ids at `path`, or null if it is absent, unreadable or fails a check. */
async function tryRead(path: string, vocabSize: number): Promise<Int32Array | null> {
  try {
    return decodeTokenFile(await Deno.readFile(path), vocabSize);
  } catch {
    return null;
  }
}

/** Write through a temporary file and a rename; false (not an error) if it cannot be written. */
async function tryWrite(path: string, bytes: Uint8Array): Promise<boolean> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.mkdir(dirOf(path), { recursive: true });
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
    return true;
  } catch {
    await Deno.remove(tmp).catch(() => {});
    return false;
  }
}

/**
 * The ids of `text` (read from `textPath`) under `tokenizer`, from a cache when a valid one
 * exists, else encoded and cached next to the text or in the fallback directory.
 */
export async function encodeWithCache(
  textPath: string,
  text: string,
  tokenizer: Tokenizer,
  opts: CacheOptions = {},
): Promise<EncodedText> {
  if (opts.enabled === false) {
    return { tokens: tokenizer.encode(text), cachePath: null, fromCache: false };
  }
  const name = `${baseOf(textPath)}.${tokenizer.kind}.${await cacheKey(text, tokenizer)}.tokens`;
  const fallbackDir = opts.fallbackDir ?? "./data/cache";
  const beside = `${dirOf(textPath)}/${name}`;
  const fallback = `${fallbackDir.replace(/[\\/]+$/, "")}/${name}`;
  for (const path of [beside, fallback]) {
    const tokens = await tryRead(path, tokenizer.vocabSize);
    if (tokens) return { tokens, cachePath: path, fromCache: true };
  }
  const tokens = tokenizer.encode(text);
  const bytes = encodeTokenFile(tokens, tokenizer.vocabSize);
  const targets = (await looksWritable(dirOf(textPath))) ? [beside, fallback] : [fallback];
  for (const path of targets) {
    if (await tryWrite(path, bytes)) return { tokens, cachePath: path, fromCache: false };
  }
  return { tokens, cachePath: null, fromCache: false };
}
