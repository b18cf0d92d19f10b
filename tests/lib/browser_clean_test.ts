// The browser-clean core: nothing under engine/, kernels/, nn/ or models/ touches Deno.* or
// reads files relative to itself, so the engine runs in a browser tab and imports from a URL.

import { deepStrictEqual } from "node:assert/strict";

const CORE = ["engine", "kernels", "nn", "models"];
const root = new URL("../../", import.meta.url);

async function* tsFiles(dir: URL): AsyncGenerator<URL> {
  for await (const e of Deno.readDir(dir)) {
    const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* tsFiles(u);
    else if (e.name.endsWith(".ts")) yield u;
  }
}

Deno.test("core folders use no Deno.* API and no bare specifiers", async () => {
  const offenders: string[] = [];
  for (const folder of CORE) {
    for await (const file of tsFiles(new URL(folder + "/", root))) {
      const lines = (await Deno.readTextFile(file)).split("\n");
      lines.forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, "");
        const where = `${file.pathname.slice(root.pathname.length)}:${i + 1}`;
        if (/\bDeno\./.test(code)) offenders.push(`${where}: ${line.trim()}`);
        const spec = code.match(/\bfrom\s+"([^"]+)"/)?.[1];
        if (spec && !/^(\.{1,2}\/|npm:|node:|https?:)/.test(spec)) {
          offenders.push(`${where}: bare specifier ${spec}`);
        }
      });
    }
  }
  deepStrictEqual(offenders, []);
});
