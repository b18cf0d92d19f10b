// The command-line entry: `deno task train [flags]` and `deno task generate [flags]`. Parses the
// subcommand, runs it, and turns the errors a user can fix (bad flags, missing or corrupt files,
// unusable backends) into one line on stderr with a non-zero exit code.

import { FlagError } from "./flags.ts";
import { runTrain } from "./train.ts";
import { runGenerate } from "./generate.ts";
import { isUserError } from "./errors.ts";

const USAGE = `Usage: deno task train [flags]      train a GPT or BitGPT model (see train --help)
       deno task generate [flags]   sample from a trained checkpoint (see generate --help)

Quick start (CPU, a few minutes):
  deno task train --preset baby --tokenizer char --out-dir out-baby
  deno task generate --out-dir out-baby --prompt "ROMEO:" --max-new-tokens 300
`;

/** Run the CLI with `args` (without the program name); returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "train":
        return await runTrain(rest);
      case "generate":
        return await runGenerate(rest);
      case undefined:
      case "--help":
      case "-h":
      case "help":
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new FlagError(`unknown command '${command}'; use train or generate (see --help)`);
    }
  } catch (e) {
    if (isUserError(e)) {
      console.error(`error: ${(e as Error).message.split("\n")[0]}`);
      return e instanceof FlagError ? 2 : 1;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
