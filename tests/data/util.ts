// Helpers for the data tests: where the shared datasets live and scratch directories.

/** `$BITGPT_DATA_DIR` (CI sets it to the shared data directory), else ./data. */
export const DATA_DIR = (() => {
  try {
    return Deno.env.get("BITGPT_DATA_DIR") || "./data";
  } catch {
    return "./data";
  }
})();

/** The path of a file in DATA_DIR, or null when it is not there (tests then skip). */
export function sharedFile(name: string): string | null {
  const path = `${DATA_DIR}/${name}`;
  try {
    return Deno.statSync(path).isFile ? path : null;
  } catch {
    return null;
  }
}

/** Run `fn` in a fresh temporary directory, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt-data-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}
