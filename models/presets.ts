// Named presets: a model config plus suggested training settings. `nano` is for tests, `baby` is
// nanoGPT's CPU config for char-level Shakespeare, `small` the original BitGPT default, `gpt2`
// GPT-2 small (124M) and the larger GPT-2 sizes, and `1b`/`gpt2-xl` for the ≥ 1B scale.

import { ConfigError, type GPTConfig, makeConfig, type TrainConfig } from "./config.ts";

/** A named preset: architecture and training overrides. */
export interface Preset {
  /** One line for `--help`. */
  description: string;
  /** The architecture. */
  model: GPTConfig;
  /** Training settings that differ from the defaults. */
  train: Partial<TrainConfig>;
}

// GPT-2's 50257 tokens padded to a multiple of 64, as nanoGPT does.
const GPT2_VOCAB = 50304;
// tiny Shakespeare's character vocabulary.
const CHAR_VOCAB = 65;

/** Every preset by name. */
export const PRESETS: Record<string, Preset> = {
  nano: {
    description: "≈50k parameters at 65 tokens: 2 layers, 2 heads, 44 wide, block 32 (tests)",
    model: makeConfig({
      vocabSize: CHAR_VOCAB,
      blockSize: 32,
      nLayer: 2,
      nHead: 2,
      nEmbd: 44,
      dropout: 0,
    }),
    train: {
      batchSize: 4,
      maxIters: 200,
      evalIters: 5,
      evalInterval: 50,
      warmupIters: 10,
      lrDecayIters: 200,
      learningRate: 1e-3,
      minLr: 1e-4,
      logInterval: 10,
    },
  },
  baby: {
    description: "nanoGPT's CPU char-level config: 4 layers, 4 heads, 128 wide, block 64",
    model: makeConfig({
      vocabSize: CHAR_VOCAB,
      blockSize: 64,
      nLayer: 4,
      nHead: 4,
      nEmbd: 128,
      dropout: 0,
    }),
    train: {
      batchSize: 12,
      maxIters: 2000,
      lrDecayIters: 2000,
      evalIters: 20,
      evalInterval: 250,
      learningRate: 1e-3,
      minLr: 1e-4,
      warmupIters: 100,
      logInterval: 10,
    },
  },
  small: {
    description: "the original BitGPT default: 4 layers, 4 heads, 384 wide, block 256",
    model: makeConfig({
      vocabSize: GPT2_VOCAB,
      blockSize: 256,
      nLayer: 4,
      nHead: 4,
      nEmbd: 384,
      dropout: 0.2,
    }),
    train: {},
  },
  gpt2: {
    description: "GPT-2 small (124M): 12 layers, 12 heads, 768 wide, block 1024",
    model: makeConfig({
      vocabSize: GPT2_VOCAB,
      blockSize: 1024,
      nLayer: 12,
      nHead: 12,
      nEmbd: 768,
    }),
    train: {},
  },
  "gpt2-medium": {
    description: "GPT-2 medium (350M): 24 layers, 16 heads, 1024 wide",
    model: makeConfig({
      vocabSize: GPT2_VOCAB,
      blockSize: 1024,
      nLayer: 24,
      nHead: 16,
      nEmbd: 1024,
    }),
    train: {},
  },
  "gpt2-large": {
    description: "GPT-2 large (774M): 36 layers, 20 heads, 1280 wide",
    model: makeConfig({
      vocabSize: GPT2_VOCAB,
      blockSize: 1024,
      nLayer: 36,
      nHead: 20,
      nEmbd: 1280,
    }),
    train: {},
  },
  "gpt2-xl": {
    description: "GPT-2 XL (1.5B): 48 layers, 25 heads, 1600 wide",
    model: makeConfig({
      vocabSize: GPT2_VOCAB,
      blockSize: 1024,
      nLayer: 48,
      nHead: 25,
      nEmbd: 1600,
    }),
    train: {},
  },
  "1b": {
    description: "≈1.3B: 24 layers, 16 heads, 2048 wide, rotary positions, block 2048",
    model: makeConfig({
      vocabSize: GPT2_VOCAB,
      blockSize: 2048,
      nLayer: 24,
      nHead: 16,
      nEmbd: 2048,
      pos: "rope",
      bias: false,
    }),
    train: {},
  },
};

/** Preset names, for `--help` and errors. */
export const PRESET_NAMES: readonly string[] = Object.keys(PRESETS);

/** The preset `name` (a copy), or an error listing the known names. */
export function getPreset(name: string): Preset {
  const p = Object.hasOwn(PRESETS, name) ? PRESETS[name] : undefined;
  if (!p) throw new ConfigError(`unknown preset '${name}' (known: ${PRESET_NAMES.join(", ")})`);
  return { description: p.description, model: { ...p.model }, train: { ...p.train } };
}
