import { CharTokenizer, generate, getPreset, splitTokens, train, useBackend } from "../mod.ts";

await useBackend("auto"); // WebGPU when the runtime has an adapter, else the CPU
const text = "To be, or not to be, that is the question. ".repeat(40);
const tok = CharTokenizer.fromText(text);
const nano = getPreset("nano"); // 2 layers, 2 heads, 44 wide; 200 iterations of batch 4
const { model } = await train({
  kind: "bitgpt", // or "gpt"
  config: { ...nano.model, vocabSize: tok.vocabSize },
  data: splitTokens(tok.encode(text)), // 90% train, 10% validation
  train: { ...nano.train, learningRate: 3e-3, logInterval: 50 },
  onStep: ({ iter, loss }) => console.log(`step ${iter} | loss ${loss.toFixed(4)}`),
});
const [ids] = await generate(model, tok.encode("To be"), { maxNewTokens: 40, temperature: 0.5 });
console.log("To be" + tok.decode(ids));
