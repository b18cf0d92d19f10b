// The files of a run directory (--out-dir) and how the commands find and read them:
// ckpt.safetensors (best validation loss; what `generate` loads), last.safetensors (the rolling
// checkpoint: written at every evaluation, on Ctrl-C and at the end of a run), config.json (the
// train flags of the run, the base that `--resume` overrides with explicit flags). `--resume`
// continues the newer of the two checkpoints by the iteration they hold.

import type { Backend } from "../engine/backend.ts";
import { loadCheckpoint, type LoadedCheckpoint } from "../models/checkpoint.ts";
import { MAX_HEADER_BYTES } from "../nn/safetensors.ts";
import { ConfigError, type GPTConfig } from "../models/config.ts";
import { type Tokenizer, tokenizerFromJSON } from "../data/tokenizer.ts";
import { GPT2_PADDED_VOCAB_SIZE, Gpt2Tokenizer } from "../data/tokenizer.ts";
import { CheckpointError } from "./errors.ts";
import { joinPath, readHead } from "./files.ts";

/** Best-validation checkpoint. */
export const CKPT_FILE = "ckpt.safetensors";
/** Latest state (interrupt or end of run), for --resume. */
export const LAST_FILE = "last.safetensors";
/** The run's train flags. */
export const RUN_CONFIG_FILE = "config.json";

async function mtime(path: string): Promise<number | null> {
  try {
    const s = await Deno.stat(path);
    return s.isFile ? (s.mtime?.getTime() ?? 0) : null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/** A run directory to read from must be a directory; one line otherwise. */
async function checkRunDir(outDir: string): Promise<void> {
  let isDir = false;
  try {
    isDir = (await Deno.stat(outDir)).isDirectory;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) throw e;
    return; // missing: the caller says which checkpoint it looked for
  }
  if (!isDir) {
    throw new CheckpointError(`--out-dir '${outDir}' is a file, not a run directory`);
  }
}

/**
 * The string metadata of a safetensors file, read from its header alone; null when the file is
 * missing or its header is not one (a damaged file is for the loader to describe).
 */
export async function readMetadata(path: string): Promise<Record<string, string> | null> {
  try {
    const size = await readHead(path, 8);
    if (size.length < 8) return null;
    const n = new DataView(size.buffer).getBigUint64(0, true);
    if (n > BigInt(MAX_HEADER_BYTES)) return null;
    const text = new TextDecoder().decode((await readHead(path, 8 + Number(n))).subarray(8));
    const meta = JSON.parse(text)?.__metadata__;
    return typeof meta === "object" && meta !== null ? meta : {};
  } catch {
    return null;
  }
}

/** Where a checkpoint's run stands: its iteration, and whether that iteration's eval ran. */
async function progressOf(path: string): Promise<number> {
  const meta = await readMetadata(path);
  const it = /^\d{1,15}$/.test(meta?.iteration ?? "") ? Number(meta!.iteration) : -1;
  return 2 * it + (meta?.eval_done === "1" ? 1 : 0);
}

/**
 * The checkpoints `--resume` may continue, newest first: last.safetensors and ckpt.safetensors
 * ordered by the iteration they hold (the rolling one first on a tie).
 */
export async function resumePaths(outDir: string): Promise<string[]> {
  await checkRunDir(outDir);
  const found: { path: string; at: number }[] = [];
  for (const name of [LAST_FILE, CKPT_FILE]) {
    const path = joinPath(outDir, name);
    if ((await mtime(path)) !== null) found.push({ path, at: await progressOf(path) });
  }
  if (found.length === 0) {
    throw new CheckpointError(
      `--resume: no checkpoint in '${outDir}' (looked for ${CKPT_FILE} and ${LAST_FILE}); ` +
        `train without --resume, or point --out-dir at a run`,
    );
  }
  return found.sort((a, b) => b.at - a.at).map((f) => f.path);
}

/** The checkpoint `generate` samples from: ckpt.safetensors, else last.safetensors. */
export async function generatePath(outDir: string): Promise<string> {
  await checkRunDir(outDir);
  const best = joinPath(outDir, CKPT_FILE);
  if ((await mtime(best)) !== null) return best;
  const last = joinPath(outDir, LAST_FILE);
  if ((await mtime(last)) !== null) return last;
  throw new CheckpointError(
    `no checkpoint in '${outDir}' (looked for ${CKPT_FILE} and ${LAST_FILE}); train one with ` +
      `\`deno task train --out-dir ${outDir}\` or pass --out-dir of a trained run`,
  );
}

/** A checkpoint read from a file: what it holds, and the SHA-256 of its bytes (hex). */
export type ReadCheckpoint = LoadedCheckpoint & { sha256: string };

/**
 * Read and load a checkpoint file; a damaged file is a one-line CheckpointError naming it.
 * `config` gives what a file without our metadata cannot tell (its head count).
 */
export async function readCheckpoint(
  path: string,
  backend: Backend,
  o: { allowNonFinite?: boolean; config?: Partial<GPTConfig> } = {},
): Promise<ReadCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint '${path}': ${(e as Error).message}`);
  }
  let ckpt: LoadedCheckpoint;
  try {
    ckpt = loadCheckpoint(bytes, { backend, allowNonFinite: o.allowNonFinite, config: o.config });
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    // A foreign file that needs a setting given: the message says which.
    if (e instanceof ConfigError || (e as Error).cause instanceof ConfigError) {
      throw new CheckpointError(`'${path}': ${msg}`);
    }
    if (!(e instanceof CheckpointError)) throw e;
    throw new CheckpointError(
      `'${path}' is not a usable checkpoint (${msg}); retrain, or restore the file`,
    );
  }
  return { ...ckpt, sha256: await sha256Hex(bytes) };
}

/** The SHA-256 of `bytes` as hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The tokenizer saved with a checkpoint (GPT-2's for files without one, e.g. nanoGPT or Hugging
 * Face GPT-2 weights), checked against the model's vocabulary size.
 */
export function checkpointTokenizer(ckpt: LoadedCheckpoint, path: string): Tokenizer {
  let tok: Tokenizer;
  if (ckpt.tokenizer === null) {
    tok = new Gpt2Tokenizer(Math.max(ckpt.config.vocabSize, GPT2_PADDED_VOCAB_SIZE));
  } else {
    try {
      tok = tokenizerFromJSON(JSON.parse(ckpt.tokenizer));
    } catch (e) {
      throw new CheckpointError(
        `'${path}': its tokenizer cannot be restored (${(e as Error).message})`,
      );
    }
  }
  const modelVocab = ckpt.config.vocabSize;
  const needed = tok.kind === "gpt2" ? 50257 : tok.vocabSize;
  if (needed > modelVocab) {
    throw new CheckpointError(
      `'${path}': tokenizer mismatch: the ${tok.kind} tokenizer has ${needed} tokens but the ` +
        `model's vocab_size is ${modelVocab}`,
    );
  }
  return tok;
}
