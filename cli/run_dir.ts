// The run directory (--out-dir) checked before `train` does any work: it must be a writable
// directory (made if missing); a fresh run never lands on an earlier one unless --overwrite says
// so; a file we did not write is never replaced, even then; a directory where a file of ours
// goes, and temporary files left by a killed write, are dealt with at the start, not the end.

import { FlagError } from "./args.ts";
import { CheckpointError } from "./errors.ts";
import { readMetadata } from "./checkpoints.ts";
import { joinPath, readHead } from "./files.ts";
import { parseMetrics } from "./metrics.ts";

/** Every file `train` writes in its run directory. */
export const RUN_FILES = [
  "config.json",
  "metrics.jsonl",
  "loss.svg",
  "ckpt.safetensors",
  "ckpt.ternary.safetensors",
  "last.safetensors",
] as const;

// writeFileAtomic's temporaries: `<file>.tmp-<8 hex digits>`.
const TEMP = new RegExp(
  `^(${RUN_FILES.map((f) => f.replace(/\./g, "\\.")).join("|")})\\.tmp-[0-9a-f]{8}$`,
);

const SAFETENSORS_FORMATS = ["bitgpt-checkpoint", "bitgpt-ternary"];

/** How `train` will use the directory. */
export interface RunDirOptions {
  /** Continue the run in it (its files are ours to update). */
  resume: boolean;
  /** Replace an earlier run in it (only files that run wrote). */
  overwrite: boolean;
  /** The training flags' names, to recognise our config.json. */
  configKeys: readonly string[];
}

/** What `prepareRunDir` did, for a line of output. */
export interface RunDirReport {
  /** Leftover temporary files removed. */
  removedTemps: string[];
  /** Files of an earlier run removed (--overwrite). */
  replaced: string[];
  /** The directory did not exist and was made. */
  created: boolean;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Make sure `dir` exists, is a directory and takes new files; one-line FlagError otherwise.
 * Returns true when it was made.
 */
async function checkWritableDir(dir: string, mustExist: boolean): Promise<boolean> {
  const flag = `--out-dir '${dir}'`;
  try {
    const st = await statOrNull(dir);
    if (st && !st.isDirectory) {
      throw new FlagError(`${flag} is a file, not a directory; choose another --out-dir`);
    }
    if (!st && mustExist) {
      throw new CheckpointError(
        `--resume: '${dir}' does not exist; train without --resume, or point --out-dir at a run`,
      );
    }
    if (!st) await Deno.mkdir(dir, { recursive: true });
    const probe = await Deno.makeTempFile({ dir, prefix: ".bitgpt-write-test-" });
    await Deno.remove(probe);
    return st === null;
  } catch (e) {
    if (e instanceof FlagError || e instanceof CheckpointError) throw e;
    const why = e instanceof Deno.errors.NotADirectory
      ? "a part of the path is a file, not a directory"
      : e instanceof Deno.errors.PermissionDenied || (e as Error).name === "NotCapable"
      ? "is not writable"
      : e instanceof Deno.errors.AlreadyExists
      ? "a part of the path is a file, not a directory"
      : `cannot be used (${(e as Error).message.split("\n")[0]})`;
    throw new FlagError(`${flag}: ${why}; choose another --out-dir`);
  }
}

/** Did `train` write this file? Judged by its content, never by its name alone. */
async function isOurs(path: string, name: string, configKeys: readonly string[]): Promise<boolean> {
  if (name.endsWith(".safetensors")) {
    return SAFETENSORS_FORMATS.includes((await readMetadata(path))?.format ?? "");
  }
  const text = new TextDecoder().decode(await readHead(path, 64 << 20));
  if (name === "config.json") {
    try {
      const c = JSON.parse(text);
      const keys = typeof c === "object" && c !== null && !Array.isArray(c) ? Object.keys(c) : [];
      return keys.length > 0 && keys.every((k) => configKeys.includes(k));
    } catch {
      return false;
    }
  }
  if (name === "metrics.jsonl") {
    // Every line a record of ours, but a last one cut by a crash after at least one good line.
    const good = text.split("\n").filter((l) => l.trim() !== "").map((l) =>
      parseMetrics(l).length === 1
    );
    const bad = good.indexOf(false);
    return bad === -1 || (bad > 0 && bad === good.length - 1);
  }
  return text.startsWith('<svg xmlns="http://www.w3.org/2000/svg"') &&
    text.includes(">iteration</text>");
}

/**
 * Check and prepare the run directory before any work: a writable directory; our file names
 * free or holding files of ours (a directory or someone else's file there is refused); a fresh
 * run refused over an earlier one unless `overwrite`, whose files are then removed; leftover
 * temporary files of killed writes removed.
 */
export async function prepareRunDir(dir: string, o: RunDirOptions): Promise<RunDirReport> {
  const created = await checkWritableDir(dir, o.resume);
  const report: RunDirReport = { removedTemps: [], replaced: [], created };
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && TEMP.test(e.name)) {
      await Deno.remove(joinPath(dir, e.name));
      report.removedTemps.push(e.name);
    }
  }
  const present: string[] = [];
  for (const name of RUN_FILES) {
    const path = joinPath(dir, name);
    const st = await statOrNull(path);
    if (!st) continue;
    if (!st.isFile) {
      throw new CheckpointError(
        `'${path}' is not a file; train writes its ${name} there: move it away or choose another --out-dir`,
      );
    }
    if (!(await isOurs(path, name, o.configKeys))) {
      throw new CheckpointError(
        `'${path}' was not written by bitgpt train and would be replaced; move it away or ` +
          `choose another --out-dir`,
      );
    }
    present.push(name);
  }
  if (o.resume || present.length === 0) return report;
  if (!o.overwrite) {
    throw new FlagError(
      `--out-dir '${dir}' holds an earlier run (${present.join(", ")}); continue it with ` +
        `--resume, replace it with --overwrite, or choose another --out-dir`,
    );
  }
  for (const name of present) await Deno.remove(joinPath(dir, name));
  report.replaced = present;
  return report;
}
