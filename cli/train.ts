// `deno task train`: flags → checks → dataset → model → the library's training loop
// (models/train.ts), with the command's side of it: the start banner, progress on stderr,
// `step N: train loss X, val loss Y` lines, metrics.jsonl, loss.svg, atomic checkpoints (the
// rolling last.safetensors at every evaluation, ckpt.safetensors when val loss improves),
// Ctrl-C or SIGTERM → resumable checkpoint and exit 130, a stop on non-finite loss, and optional
// W&B logging. The run directory and the memory a run needs are checked before any work. A
// `.jsonl` dataset is instruction data (data/instructions.ts): its checkpoints record the chat
// template, which `generate --chat` then uses; --init-from starts such a fine-tune from a model.

import { describeChoice, describeDevice } from "../engine/device.ts";
import { checkVocabFits } from "../data/batches.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { Generator } from "../engine/random.ts";
import type { LoadedCheckpoint } from "../models/checkpoint.ts";
import type { LanguageModel } from "../models/model.ts";
import { createModel } from "../models/model.ts";
import type { GPTConfig } from "../models/config.ts";
import { getPreset, PRESET_NAMES } from "../models/presets.ts";
import { type EvalInfo, type StepInfo, train, type TrainResult } from "../models/train.ts";
import { CKPT_FILE, LAST_FILE, RUN_CONFIG_FILE, sha256Hex } from "./checkpoints.ts";
import { Interrupts } from "./interrupt.ts";
import { checkTrainingMemory } from "./preflight.ts";
import { describeTrainConfig, libTrainConfig, modelFlags, type TrainConfig } from "./flags.ts";
import { joinPath, writeFileAtomic } from "./files.ts";
import { curvesOf, MetricsLog } from "./metrics.ts";
import { lossPlotSvg } from "./plot.ts";
import { formatDuration, Progress, watchKernels } from "./progress.ts";
import { openWandb, type RemoteLog } from "./wandb.ts";
import { writeTernaryFile } from "./ternary_file.ts";
import { setup } from "./train_setup.ts";
import {
  describeData,
  initModel,
  loadRunData,
  type RunData,
  tokenizerRecord,
  truncationNote,
} from "./train_data.ts";
import { startCliProfile } from "./profile.ts";

export { presetFlags } from "./train_setup.ts";
export { libTrainConfig };

/** The model config from the flags and the tokenizer's vocabulary. */
function modelConfig(c: TrainConfig, tok: Tokenizer): GPTConfig {
  const vocabSize = c.vocabSize || tok.vocabSize;
  checkVocabFits(tok, vocabSize);
  return { vocabSize, ...modelFlags(c) };
}

/** Everything the callbacks share. */
interface RunState {
  config: TrainConfig;
  model: LanguageModel;
  progress: Progress;
  metrics: MetricsLog;
  remote: RemoteLog | null;
  title: string;
  /** Aborted by a non-finite loss (the interrupts abort `signal` themselves). */
  stop: AbortController;
  nonFinite: string | null;
}

const encoder = new TextEncoder();

function stdout(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

function stderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

async function onStep(s: RunState, info: StepInfo): Promise<void> {
  const c = s.config;
  if (!Number.isFinite(info.loss)) {
    s.nonFinite = `the training loss is ${info.loss} at iteration ${info.iter}`;
    s.stop.abort();
    return;
  }
  s.progress.step({ iter: info.iter, loss: info.loss, lr: info.lr, ms: info.msPerIter });
  if (info.iter % c.logInterval === 0 || info.iter === c.maxIters - 1) {
    const tokensPerSec = info.tokensPerIter / (info.msPerIter / 1000);
    await s.metrics.append({
      type: "train",
      iter: info.iter,
      loss: info.loss,
      lr: info.lr,
      ms: info.msPerIter,
      tokensPerSec,
    });
    s.remote?.log(
      { "train/batch_loss": info.loss, lr: info.lr, "tokens/s": tokensPerSec },
      info.iter,
    );
  }
}

/** Refresh loss.svg from the metrics history. */
function writePlot(s: RunState): Promise<void> {
  const svg = lossPlotSvg(curvesOf(s.metrics.records), s.title);
  return writeFileAtomic(joinPath(s.config.outDir, "loss.svg"), svg);
}

async function onEval(s: RunState, info: EvalInfo): Promise<void> {
  const c = s.config;
  const line = `step ${info.iter}: train loss ${info.trainLoss.toFixed(4)}, ` +
    `val loss ${info.valLoss.toFixed(4)}`;
  s.progress.log(line, stdout);
  await s.metrics.append({
    type: "eval",
    iter: info.iter,
    train: info.trainLoss,
    val: info.valLoss,
    lr: info.lr,
  });
  s.remote?.log({ "train/loss": info.trainLoss, "val/loss": info.valLoss, lr: info.lr }, info.iter);
  await writePlot(s);
  if (!Number.isFinite(info.trainLoss) || !Number.isFinite(info.valLoss)) {
    s.nonFinite = `the estimated loss is train ${info.trainLoss}, val ${info.valLoss} at ` +
      `iteration ${info.iter}`;
    s.stop.abort();
    return;
  }
  // The rolling checkpoint: at most one eval interval of work is lost to a crash or SIGKILL.
  const bytes = await info.checkpoint();
  await writeFileAtomic(joinPath(c.outDir, LAST_FILE), bytes);
  if (info.improved) {
    const path = joinPath(c.outDir, CKPT_FILE);
    await writeFileAtomic(path, bytes);
    const packed = await writeTernaryFile(s.model, path, info.iter, await sha256Hex(bytes));
    s.progress.log(`saved ${path}${packed ? ` and ${packed}` : ""}`, stdout);
  }
}

/** Print the banner: config (per --verbose), device, parameters, tokens per iteration, data. */
function banner(c: TrainConfig, params: number, dataLine: string, startIter: number): void {
  const cfg = describeTrainConfig(c);
  if (cfg.length) console.log(["config:", ...cfg].join("\n"));
  console.log(`device: ${describeDevice()} (${describeChoice()})`);
  const count = params.toLocaleString("en");
  console.log(
    `model: ${c.model}, ${(params / 1e6).toFixed(2)}M parameters (${count}, without position ` +
      `embeddings)`,
  );
  const tokens = (c.batchSize * c.blockSize).toLocaleString("en");
  console.log(`tokens per iteration: ${tokens} (batch ${c.batchSize} × block ${c.blockSize})`);
  console.log(dataLine);
  if (startIter > 0) console.log(`resuming at iteration ${startIter} of ${c.maxIters}`);
}

/** The terminal's width (120 when unknown, e.g. a pseudo-terminal without a size). */
function terminalColumns(isTTY: boolean): number {
  try {
    const cols = isTTY ? Deno.consoleSize().columns : 0;
    return cols >= 40 ? cols : 120;
  } catch {
    return 120;
  }
}

/** Run `train` with its flags; returns the exit code. */
export async function runTrain(argv: readonly string[]): Promise<number> {
  const run = await setup(argv);
  if (run.help !== undefined) {
    const width = Math.max(...PRESET_NAMES.map((n) => n.length)) + 2;
    const presets = PRESET_NAMES.map((n) => `  ${n.padEnd(width)}${getPreset(n).description}`);
    console.log([run.help, "Presets (--preset NAME):", ...presets].join("\n"));
    return 0;
  }
  const { config, backend, resume, init } = run;
  let data: RunData;
  let mconfig: GPTConfig;
  try {
    data = await loadRunData(config, resume, init);
    mconfig = resume
      ? resume.config
      : init
      ? { ...init.ckpt.config, dropout: config.dropout }
      : modelConfig(config, data.tokenizer);
    checkVocabFits(data.tokenizer, mconfig.vocabSize);
    if ("records" in data) {
      const cut = data.fit(mconfig.blockSize); // a reply that cannot fit is refused here
      if (cut.length) console.error(truncationNote(cut, mconfig.blockSize));
    }
    const memoryNote = checkTrainingMemory(config.model, mconfig, config.batchSize, backend);
    if (memoryNote) console.error(memoryNote);
  } catch (e) {
    resume?.model.dispose();
    init?.ckpt.model.dispose();
    // Refused before writing anything: leave no empty directory behind (remove fails otherwise).
    if (run.createdDir) await Deno.remove(config.outDir).catch(() => {});
    throw e;
  }
  await writeFileAtomic(joinPath(config.outDir, RUN_CONFIG_FILE), JSON.stringify(config, null, 2));
  const startIter = resume?.iteration ?? 0;
  const metricsPath = joinPath(config.outDir, "metrics.jsonl");
  const evalDone = resume?.metadata.eval_done === "1";
  const metrics = await MetricsLog.open(metricsPath, resume ? startIter : undefined, evalDone);
  const model = resume?.model ?? (init ? initModel(init.ckpt, mconfig, backend) : null) ??
    createModel(config.model, mconfig, { backend, generator: new Generator(config.seed) });
  banner(config, model.countParameters(), describeData(data), startIter);
  const isTTY = Deno.stderr.isTerminal();
  const state: RunState = {
    config,
    model,
    progress: new Progress({
      total: config.maxIters,
      tokensPerIter: config.batchSize * config.blockSize,
      isTTY,
      logInterval: config.logInterval,
      columns: terminalColumns(isTTY),
    }),
    metrics,
    remote: config.wandbLog
      ? await openWandb({ project: config.wandbProject, config: { ...config } })
      : null,
    title: `${config.model}${config.preset ? ` · ${config.preset}` : ""} · ${config.tokenizer} · ` +
      `${data.textPath.split(/[\\/]/).pop()}`,
    stop: new AbortController(),
    nonFinite: null,
  };
  watchKernels(backend, (line) => state.progress.log(line, stderr));
  const tokenizer = tokenizerRecord(data, resume ?? init?.ckpt);
  return await runLoop(state, resume, mconfig, tokenizer, data, startIter);
}

async function runLoop(
  s: RunState,
  resume: LoadedCheckpoint | undefined,
  mconfig: GPTConfig,
  tokenizer: string,
  data: RunData,
  startIter: number,
): Promise<number> {
  const c = s.config;
  // From here on, Ctrl-C or SIGTERM stops after the step and saves (cli/interrupt.ts).
  const interrupts = await Interrupts.start();
  const t0 = performance.now();
  let result: TrainResult;
  try {
    // In a terminal the live line wants frequent updates: read the loss back every <= 10 steps.
    const lib = libTrainConfig(c);
    if (s.progress.isTTY) lib.logInterval = Math.min(c.logInterval, 10);
    const profile = startCliProfile(c.profile);
    try {
      result = await train({
        model: s.model,
        config: mconfig,
        train: lib,
        data,
        resume,
        tokenizer,
        onStep: (i) => onStep(s, i),
        onEval: (i) => onEval(s, i),
        signal: AbortSignal.any([s.stop.signal, interrupts.signal]),
      });
    } catch (e) {
      s.model.dispose();
      throw e;
    } finally {
      s.progress.finish();
    }
    await profile?.finish(c.outDir, (line) => s.progress.log(line, stdout));
    return await finish(s, result, t0, startIter, interrupts.signal.aborted);
  } finally {
    interrupts.close(); // after the final save: a separate Ctrl-C during it still quits
  }
}

async function finish(
  s: RunState,
  result: TrainResult,
  t0: number,
  startIter: number,
  interrupted: boolean,
): Promise<number> {
  const c = s.config;
  try {
    if (s.nonFinite) {
      console.error(
        `error: stopping: ${s.nonFinite}; the last good checkpoint (if any) stays in ` +
          `'${c.outDir}'; try a lower --lr or a --grad-clip`,
      );
      return 1;
    }
    await writePlot(s);
    const last = joinPath(c.outDir, LAST_FILE);
    await writeFileAtomic(last, await result.checkpoint());
    const secs = (performance.now() - t0) / 1000;
    const iters = result.iteration - startIter;
    if (result.stopped === "aborted" || interrupted) {
      console.log(
        `interrupted at iteration ${result.iteration}; saved ${last}; continue with ` +
          `--resume --out-dir ${c.outDir}`,
      );
      return 130;
    }
    const msPerIter = iters ? ((secs * 1000) / iters).toFixed(0) : "-";
    console.log(
      `done: ${iters} iterations in ${formatDuration(secs)} (${msPerIter} ms/iteration), ` +
        `best val loss ${result.bestValLoss.toFixed(4)}; checkpoint ` +
        `${joinPath(c.outDir, CKPT_FILE)}`,
    );
    return 0;
  } finally {
    await s.remote?.finish();
    result.model.dispose();
  }
}
