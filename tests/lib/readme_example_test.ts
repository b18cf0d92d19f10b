// The README's library example is true: the first ```ts block under "## Library" in README.md is
// extracted, its import of mod.ts pointed at this checkout, and run in a subprocess; it must
// train (finite losses that fall) and print a sample. WebGPU is hidden from the subprocess so the
// example's `useBackend("auto")` takes the CPU path and the test stays quick on any machine.

import { ok, strictEqual } from "node:assert/strict";
import { CONFIG, losses, report, ROOT, runDeno } from "./subprocess.ts";

/** The first ```ts block of the "## Library" section, or an error saying what is missing. */
function libraryExample(markdown: string): string {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => /^##\s+Library\s*$/.test(l));
  if (start < 0) throw new Error('README.md has no "## Library" section');
  const end = lines.findIndex((l, i) => i > start && /^##\s/.test(l));
  const section = lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
  const block = /^```(?:ts|typescript)\s*\n([\s\S]*?)^```/m.exec(section);
  if (!block) throw new Error('README.md: the "## Library" section has no ```ts code block');
  return block[1];
}

Deno.test("README's library example trains and samples", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const code = libraryExample(readme);
  const modUrl = new URL("mod.ts", ROOT).href;
  // The README imports mod.ts by a path or URL (or the package name); run it against this tree.
  const local = code.replace(
    /(from\s+)"(?:[^"]*\/mod\.ts|jsr:@bitgpt\/bitgpt[^"]*)"/g,
    `$1"${modUrl}"`,
  );
  ok(local.includes(modUrl), `the README example does not import mod.ts:\n${code}`);
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_readme_" });
  try {
    await Deno.writeTextFile(`${dir}/example.ts`, local);
    const r = await runDeno(["run", "--config", CONFIG, "--allow-read", `${dir}/example.ts`], {
      cwd: dir,
      env: { DENO_WEBGPU_BACKEND: "metal" }, // no such backend on Linux: no adapter, cpu fallback
    });
    strictEqual(r.code, 0, report(r));
    const ls = losses(r.stdout);
    ok(ls.length >= 2 && ls.every(Number.isFinite), `expected finite losses\n${report(r)}`);
    ok(ls[ls.length - 1] < ls[0], `expected the loss to fall\n${report(r)}`);
    const last = r.stdout.trimEnd().split("\n").at(-1) ?? "";
    ok(!/\bloss\b/.test(last) && last.trim().length > 0, `expected a sample last\n${report(r)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
