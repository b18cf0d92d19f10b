// The typed config of `generate`: the original generate.py's flags and defaults (--prompt '',
// --num-samples 2, --max-new-tokens 2000, --temperature 1.0, --top-k 200) plus ours. Temperature 0
// means greedy decoding, and --help says so.

import {
  configLines,
  DEVICE_FLAGS,
  type DeviceFlags,
  FlagError,
  type FlagSpec,
  helpText,
  type Parsed,
  parseFlags,
} from "./args.ts";

const POS_INT = { type: "int", min: 1 } as const;
const NON_NEG_INT = { type: "int", min: 0 } as const;

/** Everything `generate` needs; defaults in `GENERATE_DEFAULTS`. */
export interface GenerateConfig extends DeviceFlags {
  /**
   * Text the samples continue; empty starts from token 0 as the original. With --chat on a model
   * tuned with the chat template, the system message.
   */
  prompt: string;
  /** Independent samples. */
  numSamples: number;
  /** Tokens generated per sample (per reply in --chat). */
  maxNewTokens: number;
  /** Softmax temperature: < 1 sharper, > 1 flatter; 0 = greedy (argmax). */
  temperature: number;
  /** Keep only the k most likely tokens. */
  topK: number;
  /** Nucleus sampling: keep the smallest set with this much probability; 1 = off. */
  topP: number;
  /** Sampling seed. */
  seed: number;
  /** Directory holding ckpt.safetensors. */
  outDir: string;
  /** Interactive chat on stdin (works piped). */
  chat: boolean;
  /** For BitGPT, run from the packed ternary file when train wrote one. */
  ternary: boolean;
  /** Config printed at start: 0 none, 1 sampling parameters, 2 all. */
  verbose: number;
  /** Load a checkpoint whose weights hold NaN or ±Infinity instead of refusing it. */
  allowNonFinite: boolean;
  /** Attention heads of a checkpoint that does not record them (nanoGPT, HF); 0 = the file's. */
  nHead: number;
  /** Record where time goes: a table at the end and <out-dir>/trace.json (cli/profile.ts). */
  profile: boolean;
}

/** The original generate.py's defaults, plus ours. */
export const GENERATE_DEFAULTS: Readonly<GenerateConfig> = Object.freeze({
  prompt: "",
  numSamples: 2,
  maxNewTokens: 2000,
  temperature: 1.0,
  topK: 200,
  topP: 1.0,
  seed: 1337,
  outDir: "out",
  backend: "auto",
  threads: 0,
  chat: false,
  ternary: true,
  verbose: 0,
  allowNonFinite: false,
  nHead: 0,
  profile: false,
});

/** The `generate` flags, in `--help` order. */
export const GENERATE_FLAGS: readonly FlagSpec<GenerateConfig>[] = [
  {
    key: "prompt",
    name: "prompt",
    kind: { type: "string" },
    help: "text to continue ('' starts from token 0); with --chat on a tuned model, the system " +
      "message",
    tunable: true,
  },
  {
    key: "numSamples",
    name: "num-samples",
    kind: POS_INT,
    help: "samples to draw",
    tunable: true,
  },
  {
    key: "maxNewTokens",
    name: "max-new-tokens",
    kind: POS_INT,
    help: "tokens per sample (per reply with --chat)",
    tunable: true,
  },
  {
    key: "temperature",
    name: "temperature",
    kind: { type: "float", min: 0 },
    help: "1.0 = unchanged, < 1 less random, > 1 more; 0 = greedy",
    tunable: true,
  },
  {
    key: "topK",
    name: "top-k",
    kind: POS_INT,
    help: "keep only the k most likely tokens",
    tunable: true,
  },
  {
    key: "topP",
    name: "top-p",
    kind: { type: "float", min: 0, max: 1, minExclusive: true },
    help: "nucleus sampling mass; 1 = off",
    tunable: true,
  },
  { key: "seed", name: "seed", kind: NON_NEG_INT, help: "sampling seed", tunable: true },
  {
    key: "outDir",
    name: "out-dir",
    kind: { type: "string" },
    help: "directory with the checkpoint",
  },
  ...DEVICE_FLAGS,
  {
    key: "chat",
    name: "chat",
    kind: { type: "bool" },
    help: "interactive chat on stdin; /reset, /exit",
  },
  {
    key: "ternary",
    name: "ternary",
    kind: { type: "bool" },
    help: "BitGPT: run on packed ternary weights (the file train wrote, else packed at load)",
  },
  {
    key: "verbose",
    name: "verbose",
    kind: { type: "int", min: 0, max: 2 },
    help: "config printed at start: 0 none, 1 sampling, 2 all",
  },
  {
    key: "allowNonFinite",
    name: "allow-non-finite",
    kind: { type: "bool" },
    help: "load weights holding NaN or Infinity instead of refusing the checkpoint",
  },
  {
    key: "nHead",
    name: "n-head",
    kind: NON_NEG_INT,
    help: "attention heads of a nanoGPT or Hugging Face file, which does not record them",
  },
  {
    key: "profile",
    name: "profile",
    kind: { type: "bool" },
    help: "time per op and kernel: a table at the end, and <out-dir>/trace.json if writable",
  },
];

const GENERATE_USAGE = "Usage: deno task generate [flags]\n\n" +
  "Sample text from the checkpoint in --out-dir, streaming it to stdout.";

/** Parse `generate` flags (defaults, then explicit flags). */
export function parseGenerateArgs(argv: readonly string[]): Parsed<GenerateConfig> {
  const { values, help } = parseFlags("generate", GENERATE_FLAGS, argv);
  if (help) {
    return { help: true, text: helpText(GENERATE_USAGE, GENERATE_FLAGS, GENERATE_DEFAULTS) };
  }
  const config = { ...GENERATE_DEFAULTS, ...values } as GenerateConfig;
  if (config.outDir === "") throw new FlagError("--out-dir: must not be empty");
  return { help: false, config, explicit: values as Partial<GenerateConfig> };
}

/** The config listing for `generate --verbose`. */
export function describeGenerateConfig(c: GenerateConfig): string[] {
  return configLines(GENERATE_FLAGS, c, c.verbose);
}
