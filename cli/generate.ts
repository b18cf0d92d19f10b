// `deno task generate`: load the checkpoint in --out-dir and stream samples to stdout as the
// original generate.py prints them (each sample is the prompt and its continuation, followed by
// a line of dashes; an empty prompt starts from token 0), or chat with --chat. Status lines go
// to stderr so that stdout holds only the text; on a terminal, control characters the
// vocabulary may hold are printed as visible escapes. A checkpoint tuned on instruction data
// records the chat template in its tokenizer, and --chat then talks through it (cli/chat.ts).

import { describeChoice, describeDevice, useBackend } from "../engine/device.ts";
import { Generator } from "../engine/random.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { ChatTemplate, chatTemplateOf } from "../data/chat_template.ts";
import { generateStream } from "../models/generate.ts";
import type { LanguageModel } from "../models/model.ts";
import {
  checkpointTokenizer,
  generatePath,
  type ReadCheckpoint,
  readCheckpoint,
} from "./checkpoints.ts";
import { CheckpointError } from "./errors.ts";
import {
  describeGenerateConfig,
  type GenerateConfig,
  parseGenerateArgs,
} from "./generate_flags.ts";
import { runChat } from "./chat.ts";
import { readTernaryFile, ternaryPathOf } from "./ternary_file.ts";
import { prepareInference } from "../models/ternary_file.ts";
import { watchKernels } from "./progress.ts";
import { startCliProfile } from "./profile.ts";

/** The separator the original prints after each sample. */
export const SAMPLE_SEPARATOR = "---------------";

/** Decodes ids to text incrementally: a character split across tokens is held until complete. */
export class StreamDecoder {
  #decoder = new TextDecoder();
  constructor(readonly tokenizer: Tokenizer) {}
  /** Text completed by these ids. */
  push(ids: ArrayLike<number>): string {
    return this.#decoder.decode(this.tokenizer.decodeBytes(ids), { stream: true });
  }
  /** Whatever is still held (an incomplete character becomes U+FFFD). */
  flush(): string {
    return this.#decoder.decode();
  }
}

/**
 * Control characters (C0, DEL, C1) but newline and tab, as visible `\x1b`-style escapes: text a
 * checkpoint's vocabulary holds must not drive the terminal (colours, cursor, title, OSC 52).
 */
export function escapeControls(text: string): string {
  return text.replace(
    /\p{Cc}/gu,
    (c) => c === "\n" || c === "\t" ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** Text output that notices a closed pipe (e.g. `| head`) instead of crashing. */
export class Output {
  #enc = new TextEncoder();
  closed = false;
  /** Write to `file`; `escape` turns control characters into visible escapes (a terminal). */
  constructor(
    readonly file: { writeSync(p: Uint8Array): number; isTerminal?(): boolean } = Deno.stdout,
    readonly escape: boolean = file.isTerminal?.() ?? false,
  ) {}
  /** Write all of `text`; returns false once the reader has gone away. */
  write(text: string): boolean {
    if (this.closed || text === "") return !this.closed;
    const bytes = this.#enc.encode(this.escape ? escapeControls(text) : text);
    try {
      for (let off = 0; off < bytes.length;) off += this.file.writeSync(bytes.subarray(off));
    } catch (e) {
      if (e instanceof Deno.errors.BrokenPipe) this.closed = true;
      else throw e;
    }
    return !this.closed;
  }
}

/** Sampling options shared by samples and chat. */
export function samplingOptions(c: GenerateConfig, model: LanguageModel, gen: Generator) {
  return {
    temperature: c.temperature,
    topK: Math.min(c.topK, model.config.vocabSize),
    topP: c.topP,
    generator: gen,
  };
}

/** Stream `numSamples` samples of the prompt's continuation to `out`. */
async function runSamples(
  model: LanguageModel,
  tok: Tokenizer,
  c: GenerateConfig,
  out: Output,
): Promise<number> {
  const start = c.prompt === "" ? [0] : Array.from(tok.encode(c.prompt));
  const gen = new Generator(c.seed);
  let tokens = 0;
  const t0 = performance.now();
  for (let k = 0; k < c.numSamples && !out.closed; k++) {
    const dec = new StreamDecoder(tok);
    out.write(dec.push(start));
    const stream = generateStream(model, start, {
      maxNewTokens: c.maxNewTokens,
      ...samplingOptions(c, model, gen),
    });
    for await (const chunk of stream) {
      tokens += chunk[0].length;
      if (!out.write(dec.push(chunk[0]))) break; // reader gone: stop generating
    }
    out.write(dec.flush() + `\n${SAMPLE_SEPARATOR}\n`);
  }
  const secs = (performance.now() - t0) / 1000;
  console.error(
    `generated ${tokens} tokens in ${secs.toFixed(1)} s (${(tokens / secs).toFixed(1)} tokens/s)`,
  );
  return 0;
}

/** The chat template the checkpoint was tuned with, bound to its tokenizer, or null. */
function checkpointTemplate(
  ckpt: ReadCheckpoint,
  tok: Tokenizer,
  path: string,
): ChatTemplate | null {
  try {
    const name = ckpt.tokenizer === null ? null : chatTemplateOf(JSON.parse(ckpt.tokenizer));
    return name === null ? null : new ChatTemplate(tok);
  } catch (e) {
    throw new CheckpointError(`'${path}': ${(e as Error).message}`);
  }
}

/** Run `generate` with its flags; returns the exit code. */
export async function runGenerate(argv: readonly string[]): Promise<number> {
  const parsed = parseGenerateArgs(argv);
  if (parsed.help) {
    console.log(parsed.text);
    return 0;
  }
  const c = parsed.config;
  const cfg = describeGenerateConfig(c);
  if (cfg.length) console.error(["config:", ...cfg].join("\n"));
  const backend = await useBackend(c.backend, { quiet: true, threads: c.threads || undefined });
  watchKernels(backend, (line) => console.error(line));
  const path = await generatePath(c.outDir);
  const ckpt = await readCheckpoint(path, backend, {
    allowNonFinite: c.allowNonFinite,
    config: c.nHead ? { nHead: c.nHead } : undefined,
  });
  const model = ckpt.model;
  try {
    const tok = checkpointTokenizer(ckpt, path);
    const template = checkpointTemplate(ckpt, tok, path);
    if (c.prompt !== "") tok.encode(c.prompt); // a prompt outside the vocabulary fails here
    console.error(`device: ${describeDevice()} (${describeChoice()})`);
    const params = model.countParameters();
    console.error(
      `loaded ${path}: ${ckpt.kind}, ${(params / 1e6).toFixed(2)}M parameters, ${tok.kind} ` +
        `tokenizer${template ? `, chat template ${template.name}` : ""}, iteration ` +
        `${ckpt.iteration}` +
        (ckpt.bestValLoss !== null ? `, best val loss ${ckpt.bestValLoss.toFixed(4)}` : ""),
    );
    if (template && !c.chat) {
      console.error(
        `note: this model was tuned with the chat template; --chat formats turns with it, ` +
          `samples continue --prompt as plain text`,
      );
    }
    const inference = await prepareInference(model, {
      ternary: c.ternary,
      source: { iteration: ckpt.iteration, sha256: ckpt.sha256 },
      packed: c.ternary ? await readTernaryFile(path) : { reason: "--ternary false" },
    });
    const line = {
      full: null,
      latent: "fake-quantised latent weights (--ternary false)",
      packed: `packed ternary weights from ${ternaryPathOf(path)}`,
      "packed-at-load": `packed ternary weights, quantised at load (${inference.reason})`,
    }[inference.mode];
    if (line) console.error(`inference: ${line}`);
    try {
      const out = new Output();
      const profile = startCliProfile(c.profile);
      const code = c.chat
        ? await runChat(model, tok, c, out, undefined, undefined, template)
        : await runSamples(model, tok, c, out);
      await profile?.finish(c.outDir, (line) => console.error(line));
      return code;
    } finally {
      inference.dispose();
    }
  } finally {
    model.dispose();
  }
}
