// The files of a run directory (--out-dir) and how the commands find and read them:
// ckpt.safetensors (best validation loss; what `generate` loads), last.safetensors (written on
// Ctrl-C and at the end of a run; what `--resume` continues when it is newer), config.json (the
// train flags of the run, the base that `--resume` overrides with explicit flags).

import type { Backend } from "../engine/backend.ts";
import { loadCheckpoint, type LoadedCheckpoint } from "../models/checkpoint.ts";
import { ConfigError, type GPTConfig } from "../models/config.ts";
import { type Tokenizer, tokenizerFromJSON } from "../data/tokenizer.ts";
import { GPT2_PADDED_VOCAB_SIZE, Gpt2Tokenizer } from "../data/tokenizer.ts";
import { CheckpointError } from "./errors.ts";
import { joinPath } from "./files.ts";

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
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** The checkpoint `--resume` continues: the newer of last.safetensors and ckpt.safetensors. */
export async function resumePath(outDir: string): Promise<string> {
  const best = joinPath(outDir, CKPT_FILE);
  const last = joinPath(outDir, LAST_FILE);
  const [tb, tl] = [await mtime(best), await mtime(last)];
  if (tb === null && tl === null) {
    throw new CheckpointError(
      `--resume: no checkpoint in '${outDir}' (looked for ${CKPT_FILE} and ${LAST_FILE}); ` +
        `train without --resume, or point --out-dir at a run`,
    );
  }
  return tl !== null && (tb === null || tl >= tb) ? last : best;
}

/** The checkpoint `generate` samples from: ckpt.safetensors, else last.safetensors. */
export async function generatePath(outDir: string): Promise<string> {
  const best = joinPath(outDir, CKPT_FILE);
  if ((await mtime(best)) !== null) return best;
  const last = joinPath(outDir, LAST_FILE);
  if ((await mtime(last)) !== null) return last;
  throw new CheckpointError(
    `no checkpoint in '${outDir}' (looked for ${CKPT_FILE} and ${LAST_FILE}); train one with ` +
      `\`deno task train --out-dir ${outDir}\` or pass --out-dir of a trained run`,
  );
}

/**
 * Read and load a checkpoint file; a damaged file is a one-line CheckpointError naming it.
 * `config` gives what a file without our metadata cannot tell (its head count).
 */
export async function readCheckpoint(
  path: string,
  backend: Backend,
  config?: Partial<GPTConfig>,
): Promise<LoadedCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint '${path}': ${(e as Error).message}`);
  }
  try {
    return loadCheckpoint(bytes, { backend, config });
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    // A foreign file that needs a setting given: the message says which.
    if (e instanceof ConfigError) throw new CheckpointError(`'${path}': ${msg}`);
    throw new CheckpointError(
      `'${path}' is not a usable checkpoint (${msg}); retrain, or restore the file`,
    );
  }
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
