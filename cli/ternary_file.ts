// The packed inference file of a BitGPT run: `train` writes ckpt.ternary.safetensors beside
// each ckpt.safetensors it saves, and `generate` prefers it. Its format, its checks and the
// choice of inference path are the model's (models/ternary_file.ts); this file reads and writes
// it beside the checkpoint.

import {
  type PackedSourceId,
  packTernary,
  type TernaryUse,
  usePackedBytes,
} from "../models/ternary_file.ts";
import type { LanguageModel } from "../models/model.ts";
import { fileExists, writeFileAtomic } from "./files.ts";

export { TERNARY_FORMAT } from "../models/ternary_file.ts";

/** `ckpt.safetensors` → `ckpt.ternary.safetensors`. */
export function ternaryPathOf(ckptPath: string): string {
  return ckptPath.replace(/(\.safetensors)?$/, ".ternary.safetensors");
}

/**
 * Write the packed ternary weights of a BitGPT (at `iteration`) beside `ckptPath`, whose bytes
 * have the SHA-256 `sha256`, atomically; returns the file's path, or null for a model without
 * BitLinears.
 */
export async function writeTernaryFile(
  model: LanguageModel,
  ckptPath: string,
  iteration: number,
  sha256: string,
): Promise<string | null> {
  const bytes = await packTernary(model, { iteration, sha256 });
  if (!bytes) return null;
  const path = ternaryPathOf(ckptPath);
  await writeFileAtomic(path, bytes);
  return path;
}

/** The packed file beside `ckptPath` as `prepareInference` takes it: its bytes, or why none. */
export async function readTernaryFile(
  ckptPath: string,
): Promise<{ bytes: Uint8Array; name: string } | { reason: string }> {
  const path = ternaryPathOf(ckptPath);
  if (!(await fileExists(path))) return { reason: `no ${path}` };
  try {
    return { bytes: await Deno.readFile(path), name: path };
  } catch (e) {
    return { reason: `${path} is unreadable (${(e as Error).message.split("\n")[0]})` };
  }
}

/**
 * Switch the BitLinears of a BitGPT loaded from `ckptPath` (at `iteration`, bytes of SHA-256
 * `sha256`) to the packed ternary × int8 path from the file beside it, when that file exists,
 * was packed from that checkpoint, and holds valid contents.
 */
export async function useTernaryFile(
  model: LanguageModel,
  ckptPath: string,
  iteration: number,
  sha256: string,
): Promise<TernaryUse & { path: string | null }> {
  const file = await readTernaryFile(ckptPath);
  const source: PackedSourceId = { iteration, sha256 };
  if (!("bytes" in file)) return { used: false, reason: file.reason, path: null, dispose() {} };
  const use = usePackedBytes(model, file.bytes, source, file.name);
  return { ...use, path: use.used ? file.name : null };
}
