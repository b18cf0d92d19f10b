// The layer rules of DESIGN.md, checked on every import (static and dynamic) of the source:
// engine ← kernels ← nn ← models ← cli; data → engine only; mod.ts and web.ts never → cli; no
// kernel imports or names a concrete backend; the engine's core (its top-level files but the
// backend registry) imports no backend's machinery (type-only imports, erased, may name what a
// backend hands its kernels); cli/ does not reach into kernels/.

import { deepStrictEqual } from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** Every .ts file under `dir` (relative to the repository root). */
async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await files(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** The source of a file without its comments (doc examples import too). */
async function code(file: string): Promise<string> {
  const text = await Deno.readTextFile(new URL(file, ROOT));
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/**
 * The repository-relative paths a file imports (static, re-exports and dynamic); with
 * `values`, only imports that bring code (`import type` and `export type` are erased).
 */
async function importsOf(file: string, values = false): Promise<string[]> {
  const text = await code(file);
  const specs = [
    ...[...text.matchAll(/(import|export)\s+(type\s)?[^;]*?from\s+["']([^"']+)["']/g)]
      .filter((m) => !(values && m[2])).map((m) => m[3]),
    ...[...text.matchAll(/import\s*\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]),
    ...[...text.matchAll(/^import\s+["']([^"']+)["']/gm)].map((m) => m[1]),
  ];
  const base = new URL(file, ROOT);
  return specs.filter((s) => s.startsWith(".")).map((s) =>
    new URL(s, base).pathname.slice(ROOT.pathname.length)
  );
}

const LAYER_OF = (path: string) => (path.includes("/") ? path.split("/")[0] : path);

/** Which layers each layer may import. */
const ALLOWED: Record<string, string[]> = {
  engine: ["engine"],
  kernels: ["engine", "kernels"],
  nn: ["engine", "kernels", "nn"],
  models: ["engine", "kernels", "nn", "models"],
  data: ["engine", "data"],
  cli: ["engine", "nn", "models", "data", "cli", "mod.ts", "web.ts"],
  "mod.ts": ["engine", "kernels", "nn", "models", "data", "web.ts"],
  "web.ts": ["engine", "kernels", "nn", "models", "data"],
};

const SOURCES = async () => [
  ...(await Promise.all(["engine", "kernels", "nn", "models", "data", "cli"].map(files))).flat(),
  "mod.ts",
  "web.ts",
];

Deno.test("imports point one way: engine ← kernels ← nn ← models ← cli, data → engine", async () => {
  const bad: string[] = [];
  for (const file of await SOURCES()) {
    const layer = LAYER_OF(file);
    for (const target of await importsOf(file)) {
      if (!ALLOWED[layer].includes(LAYER_OF(target))) bad.push(`${file} -> ${target}`);
    }
  }
  deepStrictEqual(bad, []);
});

Deno.test("no kernel imports or names a concrete backend", async () => {
  const bad: string[] = [];
  for (const file of await files("kernels")) {
    const text = await code(file);
    for (const target of await importsOf(file)) {
      if (/^engine\/(device\.ts|[a-z]+\/backend\.ts|cpu\/|meta\.ts)/.test(target)) {
        bad.push(`${file} imports ${target}`);
      }
    }
    const names = text.match(/\b(WebGpuBackend|CpuBackend|WasmBackend|MetaBackend)\b/g);
    if (names) bad.push(`${file} names ${[...new Set(names)].join(", ")}`);
    if (/instanceof\s+\w*Backend\b/.test(text)) bad.push(`${file} tests a backend's class`);
  }
  deepStrictEqual(bad, []);
});

Deno.test("the engine's core imports no backend's machinery (device.ts is the registry)", async () => {
  const bad: string[] = [];
  for (const file of await files("engine")) {
    if (file.split("/").length !== 2 || file === "engine/device.ts") continue;
    for (const target of await importsOf(file, true)) {
      if (/^engine\/(webgpu|wasm|cpu)\//.test(target)) bad.push(`${file} -> ${target}`);
    }
  }
  deepStrictEqual(bad, []);
});

Deno.test("cli/ reaches kernels only through nn and models", async () => {
  const bad: string[] = [];
  for (const file of await files("cli")) {
    for (const target of await importsOf(file)) {
      if (target.startsWith("kernels/")) bad.push(`${file} -> ${target}`);
    }
  }
  deepStrictEqual(bad, []);
});

Deno.test("the import reader sees imports, re-exports and type-only imports", async () => {
  const ok = (cond: boolean, what: string) => deepStrictEqual(cond, true, what);
  ok((await importsOf("cli/main.ts")).includes("cli/train.ts"), "a static import");
  ok((await importsOf("web.ts")).includes("kernels/mod.ts"), "a re-export");
  ok((await importsOf("engine/backend.ts")).includes("engine/wasm/context.ts"), "a type import");
  ok(!(await importsOf("engine/backend.ts", true)).includes("engine/wasm/context.ts"), "erased");
  ok(!(await importsOf("mod.ts")).includes("mod.ts"), "its doc example is not an import");
});
