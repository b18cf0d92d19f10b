#!/usr/bin/env python3
"""Write the tiny Hugging Face GPT-2 that tests/models/hf_gpt2_test.ts loads, with its logits.

  python3 tools/hf_gpt2_fixture.py tests/models/fixtures/hf_gpt2_tiny

Needs `transformers` and torch (any recent pair; the committed files were made with transformers
5.18.0 and torch 2.13.0+cpu). The model is transformers' own GPT2LMHeadModel, saved by its
save_pretrained (model.safetensors with Conv1D weights, config.json with activation_function
"gelu_new"); reference.safetensors holds token ids [2, 12] (I32) and the model's logits for them
computed by transformers in float64 (`logits64`) and float32 (`logits32`). The weights are drawn
larger than GPT-2's init (std 0.02) so that the MLP's inputs spread over [-4, 4], where the tanh
and the exact GELU differ by up to 4.7e-4: a loader that picks the wrong one misses the logits.
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel


def main(out):
    torch.manual_seed(20240915)
    config = GPT2Config(vocab_size=40, n_positions=12, n_embd=16, n_layer=2, n_head=2,
                        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or \
                    name.endswith("ln_f.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif "wte" in name or "wpe" in name:
                p.copy_(0.8 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[0] ** 0.5)  # Conv1D [in, out]: std 1/√in
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ["generation_config.json"]:
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    ids = torch.randint(0, config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits32 = model(ids).logits
        logits64 = model.double()(ids).logits
    save_file({"ids": ids.to(torch.int32), "logits32": logits32.contiguous(),
               "logits64": logits64.contiguous()}, os.path.join(out, "reference.safetensors"),
              metadata={"transformers": __import__("transformers").__version__,
                        "torch": torch.__version__})
    with open(os.path.join(out, "config.json")) as f:
        activation = json.load(f)["activation_function"]
    print(f"wrote {out}: activation_function {activation}, logits {tuple(logits64.shape)}, "
          f"|logits| <= {logits64.abs().max().item():.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
