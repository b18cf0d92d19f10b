// Bad command lines end in one line `error: ...` with exit 2 (flags) or 1 (files, resources),
// no stack trace, quickly and in bounded memory (issue 14). Half of the flag lines and all the
// file and resource lines here; `deno task reliability` runs all of tests/reliability/bad_cli.ts.

import { deepStrictEqual } from "node:assert/strict";
import { BAD_LINES, runBadLines } from "../reliability/bad_cli.ts";
import { hasPty } from "./pty_util.ts";

Deno.test({
  name: "cli: bad command lines are one-line errors with the right exit code",
  ignore: !hasPty, // python3 measures each run's peak memory (tests/reliability/maxrss.py)
}, async () => {
  const lines = BAD_LINES.filter((l, i) =>
    i % 2 === 0 || l.code === 1 || l.args.includes("$D/big2")
  );
  deepStrictEqual(await runBadLines(lines), []);
});
