// The start of `train`, before any work: the flags (a preset's values, then explicit ones; on
// --resume the run's saved config.json and the checkpoint's architecture under them; with
// --init-from the architecture of the checkpoint a new run starts from), the run directory
// checked and prepared (cli/run_dir.ts), the backend, and the checkpoint to continue (the newest
// that loads) or to start from.

import type { Backend } from "../engine/backend.ts";
import { useBackend } from "../engine/device.ts";
import type { LoadedCheckpoint } from "../models/checkpoint.ts";
import { getPreset, PRESET_NAMES } from "../models/presets.ts";
import {
  generatePath,
  type ReadCheckpoint,
  readCheckpoint,
  resumePaths,
  RUN_CONFIG_FILE,
} from "./checkpoints.ts";
import { CheckpointError } from "./errors.ts";
import { joinPath } from "./files.ts";
import {
  FlagError,
  modelFlags,
  parseTrainArgs,
  TRAIN_DEFAULTS,
  type TrainConfig,
  validateTrain,
} from "./flags.ts";
import { MODEL_SETTINGS } from "../models/config.ts";
import { prepareRunDir } from "./run_dir.ts";

/** The CLI config fields that fix the architecture (a resumed run cannot change them). */
const ARCH_KEYS: readonly (keyof TrainConfig)[] = [
  "model",
  "tokenizer",
  "vocabSize",
  ...MODEL_SETTINGS.map((s) => s.key),
];

/** Keys of config.json files written before the flags took the library's names. */
const LEGACY_KEYS: Readonly<Record<string, keyof TrainConfig>> = { lr: "learningRate" };

/** A models preset as train flags (its vocabSize is left to the tokenizer). */
export function presetFlags(name: string): Partial<TrainConfig> {
  if (!PRESET_NAMES.includes(name)) {
    throw new FlagError(`--preset: unknown preset '${name}' (known: ${PRESET_NAMES.join(", ")})`);
  }
  const { model, train } = getPreset(name);
  return { ...modelFlags(model), ...train };
}

/** The flags a run saved in its config.json: known flags of the flag's type only (may be {}). */
async function savedFlags(outDir: string): Promise<Partial<TrainConfig>> {
  const saved: Record<string, unknown> = {};
  try {
    const json = JSON.parse(await Deno.readTextFile(joinPath(outDir, RUN_CONFIG_FILE)));
    // The file is ours (cli/run_dir.ts checked), but may have been edited.
    for (let [k, v] of Object.entries(json)) {
      k = LEGACY_KEYS[k] ?? k;
      const d = (TRAIN_DEFAULTS as Record<string, unknown>)[k];
      if (d !== undefined && typeof v === typeof d) saved[k] = v;
    }
  } catch {
    // no config.json (a checkpoint from elsewhere): defaults plus what the checkpoint says
  }
  return saved as Partial<TrainConfig>;
}

/** An architecture key as its flag: nLayer -> --n-layer. */
const flagOf = (k: string) => `--${k.replace(/[A-Z]/g, (m) => "-" + m.toLowerCase())}`;

/** The architecture a checkpoint fixes, as train flags (a file without a tokenizer is gpt2's). */
function checkpointFlags(ckpt: LoadedCheckpoint): Partial<TrainConfig> {
  const fromCkpt: Partial<TrainConfig> = { model: ckpt.kind, ...ckpt.config };
  const tokKind = ckpt.tokenizer ? JSON.parse(ckpt.tokenizer).kind : undefined;
  if (tokKind) fromCkpt.tokenizer = tokKind;
  return fromCkpt;
}

/** The flags a resumed run uses: its config.json, the checkpoint's architecture, explicit flags. */
function resumeConfig(
  outDir: string,
  saved: Partial<TrainConfig>,
  explicit: Partial<TrainConfig>,
  ckpt: LoadedCheckpoint,
): TrainConfig {
  const fromCkpt = checkpointFlags(ckpt);
  for (const k of ARCH_KEYS) {
    const want = explicit[k];
    const have = fromCkpt[k];
    if (want !== undefined && have !== undefined && want !== have && k !== "vocabSize") {
      throw new FlagError(
        `${flagOf(k)} ${want} does not match the checkpoint in '${outDir}' (${have}); drop the ` +
          `flag to resume, or use a new --out-dir`,
      );
    }
  }
  const c = { ...TRAIN_DEFAULTS, ...saved, ...fromCkpt, ...explicit, resume: true } as TrainConfig;
  c.vocabSize = ckpt.config.vocabSize;
  c.outDir = outDir; // write where we read, whatever the saved config.json says
  c.profile = explicit.profile ?? false; // profiling is asked for per invocation, never resumed
  validateTrain(c);
  return c;
}

/**
 * The flags of a run started from a checkpoint (--init-from): the checkpoint's architecture and
 * tokenizer under the flags; an explicit flag that contradicts them is refused, but --dropout,
 * which fine-tuning may change (as nanoGPT's init_from allows).
 */
function initConfig(
  path: string,
  config: TrainConfig,
  explicit: Partial<TrainConfig>,
  ckpt: LoadedCheckpoint,
): TrainConfig {
  const fromCkpt = checkpointFlags(ckpt);
  fromCkpt.tokenizer ??= "gpt2";
  for (const k of ARCH_KEYS) {
    const want = explicit[k];
    const have = fromCkpt[k];
    if (k === "dropout" || want === undefined || have === undefined || want === have) continue;
    if (k === "vocabSize" && want === 0) continue; // 0: what the tokenizer needs
    throw new FlagError(
      `${flagOf(k)} ${want} does not match the --init-from checkpoint '${path}' (${have}); drop ` +
        `the flag: a fine-tune keeps the architecture it starts from (only --dropout may change)`,
    );
  }
  // Only train's own keys (a Hugging Face file's config also says its activation).
  const arch = Object.fromEntries(ARCH_KEYS.map((k) => [k, fromCkpt[k] ?? config[k]]));
  const c = { ...config, ...arch, dropout: explicit.dropout ?? ckpt.config.dropout } as TrainConfig;
  c.vocabSize = ckpt.config.vocabSize;
  validateTrain(c);
  return c;
}

/** The checkpoint --init-from names: a file, or a run directory's ckpt (else last) file. */
async function initPath(initFrom: string): Promise<string> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(initFrom);
  } catch (e) {
    throw new CheckpointError(
      `--init-from '${initFrom}': ${(e as Error).message.split(":")[0]}; give a checkpoint ` +
        `file or the --out-dir of a run`,
    );
  }
  return st.isDirectory ? await generatePath(initFrom) : initFrom;
}

/** Where a path is on disk, or null when it does not exist. */
async function realPathOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}

/** --init-from must not be, or be inside, the new run's --out-dir (its files would be replaced). */
async function checkInitOutside(initFrom: string, outDir: string): Promise<void> {
  const [from, out] = [await realPathOrNull(initFrom), await realPathOrNull(outDir)];
  if (from === null || out === null) return;
  const dirOf = (await Deno.stat(from)).isDirectory ? from : from.replace(/[\\/][^\\/]*$/, "");
  if (dirOf === out) {
    throw new FlagError(
      `--init-from '${initFrom}' is in --out-dir '${outDir}': a fine-tune is a new run and ` +
        `needs its own --out-dir`,
    );
  }
}

/**
 * The flags of this run (merged with the saved run's on --resume, or with the architecture of
 * the --init-from checkpoint) and the checkpoint it continues or starts from, after checking
 * the run directory.
 */
export async function setup(argv: readonly string[]) {
  const parsed = parseTrainArgs(argv, presetFlags);
  if (parsed.help) return { help: parsed.text } as const;
  let config = parsed.config;
  if (config.resume && config.initFrom !== "") {
    throw new FlagError(
      `--init-from starts a new run and --resume continues the one in --out-dir; give one of them`,
    );
  }
  if (config.initFrom !== "") await checkInitOutside(config.initFrom, config.outDir);
  const dir = await prepareRunDir(config.outDir, {
    resume: config.resume,
    overwrite: config.overwrite,
    configKeys: [...Object.keys(TRAIN_DEFAULTS), ...Object.keys(LEGACY_KEYS)],
  });
  if (dir.removedTemps.length) {
    console.error(
      `note: removed ${dir.removedTemps.length} temporary file(s) of an earlier, ` +
        `killed write in '${config.outDir}'`,
    );
  }
  if (dir.replaced.length) {
    console.error(`note: --overwrite: removed the earlier run's ${dir.replaced.join(", ")}`);
  }
  // A resumed run keeps its backend unless --backend says otherwise (the CPU and WebGPU do
  // not round alike: a run continued elsewhere is not the run it continues).
  const saved = config.resume ? await savedFlags(config.outDir) : {};
  const backend = await useBackend(parsed.explicit.backend ?? saved.backend ?? config.backend, {
    quiet: true,
    threads: config.threads || undefined,
  });
  let resume: ReadCheckpoint | undefined;
  let init: { path: string; ckpt: ReadCheckpoint } | undefined;
  if (config.resume) {
    const { path, ckpt } = await newestCheckpoint(config.outDir, backend);
    resume = ckpt;
    config = resumeConfig(config.outDir, saved, parsed.explicit, resume);
    console.log(`resuming from ${path}`);
  } else if (config.initFrom !== "") {
    try {
      const path = await initPath(config.initFrom);
      const nHead = parsed.explicit.nHead;
      const ckpt = await readCheckpoint(path, backend, { config: nHead ? { nHead } : undefined });
      init = { path, ckpt };
      config = initConfig(path, config, parsed.explicit, ckpt);
    } catch (e) {
      init?.ckpt.model.dispose();
      if (dir.created) await Deno.remove(config.outDir).catch(() => {});
      throw e;
    }
    const { kind, source, iteration } = init.ckpt;
    const from = source === "bitgpt" ? `iteration ${iteration} of its run` : `a ${source} file`;
    console.log(`initialising from ${init.path} (${kind}, ${from}); a new run from iteration 0`);
  }
  return { config, backend, resume, init, createdDir: dir.created } as const;
}

/** The newest checkpoint of a run that loads; an unusable newer one is skipped, saying why. */
async function newestCheckpoint(outDir: string, backend: Backend) {
  const paths = await resumePaths(outDir);
  for (let i = 0; i < paths.length; i++) {
    try {
      return { path: paths[i], ckpt: await readCheckpoint(paths[i], backend) };
    } catch (e) {
      if (!(e instanceof CheckpointError) || i === paths.length - 1) throw e;
      console.error(`warning: ${e.message.split("\n")[0]}; trying ${paths[i + 1]}`);
    }
  }
  throw new CheckpointError(`--resume: no usable checkpoint in '${outDir}'`);
}
