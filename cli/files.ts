// File helpers for the commands: atomic writes (a temporary file in the same directory, then a
// rename, so a crash or Ctrl-C never leaves a half-written checkpoint or plot), and paths.

/** `dir/file`, without doubling a trailing separator. */
export function joinPath(dir: string, file: string): string {
  return /[\\/]$/.test(dir) ? `${dir}${file}` : `${dir}/${file}`;
}

/** Write `data` to `path` atomically: write a sibling temporary file, then rename it over. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** True when `path` exists and is a regular file. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The first `n` bytes of the file at `path` (fewer when it is shorter). */
export async function readHead(path: string, n: number): Promise<Uint8Array> {
  using f = await Deno.open(path);
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await f.read(buf.subarray(got));
    if (k === null) break;
    got += k;
  }
  return buf.subarray(0, got);
}
