#!/usr/bin/env python3
"""Carry a BitGPT-for-Deno checkpoint to PyTorch and back (needs only torch).

  to-nanogpt   ckpt.safetensors OUT/ckpt.pt    a GPT for nanoGPT's train.py --init_from=resume
  from-nanogpt OUT/ckpt.pt ckpt.safetensors    nanoGPT's checkpoint for `deno task train --resume`
  to-bitgpt    ckpt.safetensors bitgpt.pt      a BitGPT for the original project's PyTorch model
  from-bitgpt  bitgpt.pt ckpt.safetensors      and back

Our checkpoint (models/checkpoint.ts) is safetensors with nanoGPT's parameter names, the AdamW
moments as `optimizer.<param>.exp_avg[_sq]`, and string metadata (config, iteration, optimizer
step and hyperparameters, training config, tokenizer). nanoGPT's ckpt.pt is a torch.save'd dict:
`model` (its state_dict), `optimizer` (torch AdamW's state_dict: moments by parameter index, in
the order of model.configure_optimizers: the >= 2-dim parameters, then the rest, each in
named_parameters order), `model_args`, `iter_num`, `best_val_loss`, `config`. The weights,
moments, step and config carry over exactly; batch order and dropout streams do not (each side
draws its own).

The original BitGPT (github.com/bananya-ml/BitGPT, bitgpt/bitgpt.py) splits attention into one
key/query/value BitLinear per head, each with its own RMSNorm: our q_proj/k_proj/v_proj rows are
cut per head and each head's norm gain is a copy of the projection's one (back: the copies'
mean). Its BitLinears quantise each head's weight with the head's own absmean scale, ours the
whole projection's, so the ternary levels, and the loss, differ slightly between the two.
"""

import argparse
import json
import math
import pickle
import struct
import sys

import torch

FORMAT = "bitgpt-checkpoint"
OPT = "optimizer."
DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "U8": torch.uint8,
          "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}
# Our training config's fields and nanoGPT's names for them.
TRAIN_KEYS = {"batchSize": "batch_size", "maxIters": "max_iters", "evalIters": "eval_iters",
              "evalInterval": "eval_interval", "learningRate": "learning_rate",
              "weightDecay": "weight_decay", "beta1": "beta1", "beta2": "beta2",
              "gradClip": "grad_clip", "decayLr": "decay_lr", "warmupIters": "warmup_iters",
              "lrDecayIters": "lr_decay_iters", "minLr": "min_lr", "logInterval": "log_interval"}


def fail(message):
    sys.exit(f"error: {message}")


# --- safetensors, bytes in and out -------------------------------------------------------------

def read_safetensors(path):
    """{name: tensor}, {metadata} of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    body = memoryview(raw)[8 + n:]
    tensors = {}
    for name, h in header.items():
        begin, end = h["data_offsets"]
        dtype = DTYPES[h["dtype"]]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if end > begin else \
            torch.zeros(0, dtype=dtype)
        tensors[name] = t.reshape(h["shape"])
    return tensors, meta


def write_safetensors(path, tensors, meta):
    """Write {name: tensor} and string metadata as safetensors (little-endian, 8-byte header)."""
    header, chunks, at = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [at, at + len(data)]}
        chunks.append(data)
        at += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def js_number(x):
    """A float as JavaScript's Number() reads it back (Infinity, not inf)."""
    return "Infinity" if x == math.inf else "-Infinity" if x == -math.inf else repr(float(x))


# --- the name maps -------------------------------------------------------------------------------

def gpt_names(c):
    """nanoGPT's named_parameters order for our config (the tied lm_head left out)."""
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(c["nLayer"]):
        h = f"transformer.h.{i}"
        for m in ["ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"]:
            names.append(f"{h}.{m}.weight")
            if c["bias"]:
                names.append(f"{h}.{m}.bias")
    names.append("transformer.ln_f.weight")
    if c["bias"]:
        names.append("transformer.ln_f.bias")
    return names


def bitgpt_pieces(c):
    """(ours, theirs, rows) for the original BitGPT, in its named_parameters order: their tensor
    is rows [a, b) of ours (None: all of it); several of theirs may copy one norm gain of ours."""
    C, H = c["nEmbd"], c["nHead"]
    hs = C // H
    out = [("transformer.wte.weight", "token_embedding_table.weight", None),
           ("transformer.wpe.weight", "position_embedding_table.weight", None)]
    for i in range(c["nLayer"]):
        ours, theirs = f"transformer.h.{i}", f"blocks.{i}"
        for h in range(H):
            for their, our in [("key", "k_proj"), ("query", "q_proj"), ("value", "v_proj")]:
                head = f"{theirs}.sa.heads.{h}.{their}"
                out.append((f"{ours}.attn.{our}.weight", f"{head}.weight", (h * hs, h * hs + hs)))
                out.append((f"{ours}.attn.{our}.norm.weight", f"{head}.rms_norm.weight", None))
        for our, their in [("attn.c_proj", "sa.proj"), ("mlp.c_fc", "ffwd.net.0"),
                           ("mlp.c_proj", "ffwd.net.2")]:
            out.append((f"{ours}.{our}.weight", f"{theirs}.{their}.weight", None))
            out.append((f"{ours}.{our}.norm.weight", f"{theirs}.{their}.rms_norm.weight", None))
    out += [("transformer.ln_f.weight", "out_norm.weight", None),
            ("transformer.ln_f.bias", "out_norm.bias", None),
            ("lm_head.weight", "lm_head.weight", None), ("lm_head.bias", "lm_head.bias", None)]
    return out


def cut(t, rows):
    return t.clone() if rows is None else t[rows[0]:rows[1]].clone()


def join(pieces, theirs, shapes):
    """Ours from theirs: rows put back, copies of one gain joined (the first when all equal)."""
    parts = {}
    for our, their, rows in pieces:
        parts.setdefault(our, []).append((rows, theirs[their]))
    out = {}
    for our, ps in parts.items():
        if ps[0][0] is not None:
            t = torch.empty(shapes[our], dtype=ps[0][1].dtype)
            for rows, p in ps:
                t[rows[0]:rows[1]] = p
        else:
            first = ps[0][1]
            same = all(torch.equal(first, p) for _, p in ps)
            t = first.clone() if same else torch.stack([p for _, p in ps]).mean(0)
            if not same:
                spread = max((p - t).abs().max().item() for _, p in ps)
                print(f"note: {our}: {len(ps)} per-head copies differ (by up to {spread:.3g}); "
                      "their mean is kept", file=sys.stderr)
        out[our] = t
    return out


# --- our checkpoint ------------------------------------------------------------------------------

def read_ours(path, kind):
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        fail(f"{path} is not a {FORMAT} file (format {meta.get('format')!r})")
    if meta.get("model") != kind:
        fail(f"{path} holds a {meta.get('model')} model; use to-{meta.get('model')}")
    c = json.loads(meta["config"])
    if c.get("pos", "learned") != "learned":
        fail(f"{path} uses pos={c['pos']!r}; the PyTorch models have learned positions only")
    # Absent: the model's own (models/config.ts), which is what each PyTorch model computes.
    own = {"gpt": "gelu", "bitgpt": "relu"}[kind]
    if c.get("activation", own) != own:
        fail(f"{path} uses activation={c['activation']!r}; the PyTorch {kind} has {own!r} only")
    weights = {k: v for k, v in tensors.items() if not k.startswith(OPT)}
    moments = {k[len(OPT):]: v for k, v in tensors.items() if k.startswith(OPT)}
    opt = json.loads(meta["optimizer"]) if "optimizer" in meta else None
    return c, weights, moments, opt, meta


def write_ours(path, kind, c, weights, moments, opt, iteration, best, train, tokenizer, tied):
    meta = {"format": FORMAT, "format_version": "1", "model": kind,
            "config": json.dumps(c), "tied": json.dumps(tied),
            "iteration": str(int(iteration)), "best_val_loss": js_number(best)}
    if opt is not None:
        meta["optimizer"] = json.dumps(opt)
    if train:
        meta["train_config"] = json.dumps(train)
    if tokenizer:
        meta["tokenizer"] = tokenizer
    tensors = {k: v.float() for k, v in weights.items()}
    for k, v in moments.items():
        tensors[OPT + k] = v.float()
    write_safetensors(path, tensors, meta)


def torch_optimizer(names_in_order, params, moments, opt):
    """torch AdamW's state_dict for parameters `names_in_order` (shapes from `params`), grouped
    as configure_optimizers does; moments by our names."""
    decay = [n for n in names_in_order if params[n].dim() >= 2]
    rest = [n for n in names_in_order if params[n].dim() < 2]
    order = decay + rest
    betas = tuple(opt["betas"])
    defaults = torch.optim.AdamW([torch.zeros(1)], lr=opt["lr"], betas=betas, eps=opt["eps"])
    base = {k: v for k, v in defaults.param_groups[0].items() if k != "params"}
    groups = [{**base, "weight_decay": opt["weightDecay"], "params": list(range(len(decay)))},
              {**base, "weight_decay": 0.0, "params": list(range(len(decay), len(order)))}]
    state = {}
    for i, n in enumerate(order):
        if f"{n}.exp_avg" in moments:
            state[i] = {"step": torch.tensor(float(opt["step"])),
                        "exp_avg": moments[f"{n}.exp_avg"].clone(),
                        "exp_avg_sq": moments[f"{n}.exp_avg_sq"].clone()}
    return {"state": state, "param_groups": groups}, order


def our_optimizer(sd, order):
    """Moments by name and our optimizer metadata from torch AdamW's state_dict."""
    groups = sd["param_groups"]
    ids = [i for g in groups for i in g["params"]]
    if len(ids) != len(order):
        fail(f"the optimizer holds {len(ids)} parameters, the model {len(order)}")
    moments, step = {}, 0
    for i, name in zip(ids, order):
        s = sd["state"].get(i)
        if s:
            moments[f"{name}.exp_avg"] = s["exp_avg"].float()
            moments[f"{name}.exp_avg_sq"] = s["exp_avg_sq"].float()
            step = max(step, int(float(s["step"])))
    g = groups[0]
    opt = {"step": step, "lr": g["lr"], "weightDecay": g["weight_decay"],
           "betas": list(g["betas"]), "eps": g["eps"]}
    return moments, opt


def torch_train_config(meta):
    train = json.loads(meta["train_config"]) if "train_config" in meta else {}
    return {TRAIN_KEYS[k]: v for k, v in train.items() if k in TRAIN_KEYS}


def our_train_config(config):
    back = {v: k for k, v in TRAIN_KEYS.items()}
    return {back[k]: v for k, v in (config or {}).items() if k in back}


# --- nanoGPT --------------------------------------------------------------------------------------

def has_flash():
    """nanoGPT keeps a causal-mask buffer `attn.bias` only where torch lacks flash attention."""
    return hasattr(torch.nn.functional, "scaled_dot_product_attention")


def to_nanogpt(src, dst, mask_buffers):
    c, weights, moments, opt, meta = read_ours(src, "gpt")
    if opt is None:
        fail(f"{src} has no optimizer state (use the ckpt.safetensors a training run saves)")
    names = gpt_names(c)
    model = {n: weights[n].clone() for n in names}
    model["lm_head.weight"] = model["transformer.wte.weight"]  # tied, as nanoGPT's state_dict
    if mask_buffers:
        T = c["blockSize"]
        mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        for i in range(c["nLayer"]):
            model[f"transformer.h.{i}.attn.bias"] = mask.clone()
    optimizer, _ = torch_optimizer(names, weights, moments, opt)
    model_args = {"n_layer": c["nLayer"], "n_head": c["nHead"], "n_embd": c["nEmbd"],
                  "block_size": c["blockSize"], "bias": c["bias"], "vocab_size": c["vocabSize"],
                  "dropout": c["dropout"]}
    config = {**model_args, **torch_train_config(meta)}
    if "tokenizer" in meta:
        config["bitgpt_tokenizer"] = meta["tokenizer"]
    best = float(meta.get("best_val_loss", "Infinity"))
    torch.save({"model": model, "optimizer": optimizer, "model_args": model_args,
                "iter_num": int(meta.get("iteration", "0")),
                "best_val_loss": best if math.isfinite(best) else 1e9, "config": config}, dst)
    # train.py takes the model's shape from the checkpoint but batches of its own block_size.
    passed = {*TRAIN_KEYS.values(), "block_size", "dropout"}
    flags = [f"--{k}={v}" for k, v in config.items() if k in passed]
    print(f"wrote {dst}: iteration {meta.get('iteration', '0')}, optimizer step {opt['step']}")
    print("continue with: torchrun --standalone --nproc_per_node=<GPUs> train.py "
          f"--init_from=resume --out_dir=<dir of ckpt.pt> --dataset=<name> {' '.join(flags)}")


def tokenizer_from_meta(path):
    """Our char tokenizer JSON from nanoGPT's data/<dataset>/meta.pkl (its itos)."""
    with open(path, "rb") as f:
        meta = pickle.load(f)
    itos = meta["itos"]
    return json.dumps({"kind": "char", "chars": [itos[i] for i in range(len(itos))]})


def from_nanogpt(src, dst, meta_pkl):
    ck = torch.load(src, map_location="cpu")
    sd = {k.removeprefix("_orig_mod."): v for k, v in ck["model"].items()}
    a = ck["model_args"]
    c = {"vocabSize": a["vocab_size"], "blockSize": a["block_size"], "nLayer": a["n_layer"],
         "nHead": a["n_head"], "nEmbd": a["n_embd"], "dropout": float(a.get("dropout", 0.0)),
         "bias": bool(a["bias"]), "pos": "learned"}
    names = gpt_names(c)
    if not torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"]):
        fail("lm_head.weight is not tied to transformer.wte.weight; ours ties them")
    weights = {n: sd[n].float() for n in names}
    moments, opt = {}, None
    if "optimizer" in ck:
        decay = [n for n in names if weights[n].dim() >= 2]
        moments, opt = our_optimizer(ck["optimizer"], decay + [n for n in names if n not in decay])
    config = ck.get("config", {})
    tokenizer = config.get("bitgpt_tokenizer")
    if not tokenizer and meta_pkl:
        tokenizer = tokenizer_from_meta(meta_pkl)
    best = float(ck.get("best_val_loss", math.inf))
    write_ours(dst, "gpt", c, weights, moments, opt, ck.get("iter_num", 0),
               best if best < 1e9 else math.inf, our_train_config(config), tokenizer,
               {"lm_head.weight": "transformer.wte.weight"})
    print(f"wrote {dst}: iteration {ck.get('iter_num', 0)}"
          + (f", optimizer step {opt['step']}" if opt else ", no optimizer state"))


# --- the original BitGPT -------------------------------------------------------------------------

def to_bitgpt(src, dst):
    c, weights, moments, opt, meta = read_ours(src, "bitgpt")
    pieces = bitgpt_pieces(c)
    model = {their: cut(weights[our], rows) for our, their, rows in pieces}
    T = c["blockSize"]
    for i in range(c["nLayer"]):
        for h in range(c["nHead"]):
            model[f"blocks.{i}.sa.heads.{h}.tril"] = torch.tril(torch.ones(T, T))
    out = {"model": model, "model_args": {
        "n_layer": c["nLayer"], "n_head": c["nHead"], "n_embd": c["nEmbd"],
        "block_size": c["blockSize"], "vocab_size": c["vocabSize"], "dropout": c["dropout"]},
        "iter_num": int(meta.get("iteration", "0")),
        "best_val_loss": float(meta.get("best_val_loss", "Infinity")),
        "config": {**torch_train_config(meta), "bitgpt_tokenizer": meta.get("tokenizer")}}
    if opt is not None:
        their_moments = {}
        for our, their, rows in pieces:
            for k in ["exp_avg", "exp_avg_sq"]:
                if f"{our}.{k}" in moments:
                    their_moments[f"{their}.{k}"] = cut(moments[f"{our}.{k}"], rows)
        out["optimizer"], _ = torch_optimizer([t for _, t, _ in pieces], model, their_moments, opt)
    torch.save(out, dst)
    print(f"wrote {dst}: BitGPTLanguageModel weights (load_state_dict(ck['model'])), "
          f"iteration {out['iter_num']}")


def bitgpt_config(sd, args):
    """Our config from the original's model_args, else from its tensor shapes."""
    if args:
        a = args
    else:
        V, C = sd["token_embedding_table.weight"].shape
        layers = {int(k.split(".")[1]) for k in sd if k.startswith("blocks.")}
        heads = {int(k.split(".")[4]) for k in sd if k.startswith("blocks.0.sa.heads.")}
        a = {"vocab_size": V, "n_embd": C, "n_layer": len(layers), "n_head": len(heads),
             "block_size": sd["position_embedding_table.weight"].shape[0], "dropout": 0.0}
    return {"vocabSize": int(a["vocab_size"]), "blockSize": int(a["block_size"]),
            "nLayer": int(a["n_layer"]), "nHead": int(a["n_head"]), "nEmbd": int(a["n_embd"]),
            "dropout": float(a.get("dropout", 0.0)), "bias": True, "pos": "learned"}


def from_bitgpt(src, dst):
    ck = torch.load(src, map_location="cpu")
    sd = ck["model"] if "model" in ck else ck
    c = bitgpt_config(sd, ck.get("model_args"))
    scales = ck.get("meta", {}) or {}
    theirs = {}
    for k, v in sd.items():
        layer = k.removesuffix(".weight")
        if v.dtype == torch.int8 and layer in scales:  # the original's post-training int8 save
            v = v.float() / float(scales[layer])
        theirs[k] = v.float()
    pieces = bitgpt_pieces(c)
    shapes = {}
    for our, their, rows in pieces:
        shape = list(theirs[their].shape)
        if rows is not None:
            shape[0] = shapes.get(our, [0])[0] + shape[0]
        shapes[our] = shape
    weights = join(pieces, theirs, shapes)
    moments, opt = {}, None
    if "optimizer" in ck:
        names = [t for _, t, _ in pieces]
        decay = [n for n in names if theirs[n].dim() >= 2]
        rest = [n for n in names if n not in decay]
        their_moments, opt = our_optimizer(ck["optimizer"], decay + rest)
        for k in ["exp_avg", "exp_avg_sq"]:
            mk = {t: their_moments[f"{t}.{k}"] for _, t, _ in pieces if f"{t}.{k}" in their_moments}
            if len(mk) == len(pieces):
                for our, v in join(pieces, mk, shapes).items():
                    moments[f"{our}.{k}"] = v
    config = ck.get("config", {}) if isinstance(ck.get("config"), dict) else {}
    write_ours(dst, "bitgpt", c, weights, moments, opt, ck.get("iter_num", 0),
               float(ck.get("best_val_loss", math.inf)), our_train_config(config),
               config.get("bitgpt_tokenizer"), {})
    print(f"wrote {dst}: BitGPT, iteration {ck.get('iter_num', 0)}")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-nanogpt", help="our GPT checkpoint -> nanoGPT's ckpt.pt")
    a.add_argument("src")
    a.add_argument("dst")
    a.add_argument("--mask-buffers", choices=["auto", "yes", "no"], default="auto",
                   help="write nanoGPT's attn.bias buffers (auto: when this torch lacks flash "
                        "attention, as nanoGPT's model.py decides)")
    b = sub.add_parser("from-nanogpt", help="nanoGPT's ckpt.pt -> our checkpoint")
    b.add_argument("src")
    b.add_argument("dst")
    b.add_argument("--meta", help="nanoGPT's data/<dataset>/meta.pkl: a char tokenizer")
    for name, help_text in [("to-bitgpt", "our BitGPT checkpoint -> the original's model"),
                            ("from-bitgpt", "the original BitGPT's checkpoint -> ours")]:
        s = sub.add_parser(name, help=help_text)
        s.add_argument("src")
        s.add_argument("dst")
    args = p.parse_args(argv)
    if args.command == "to-nanogpt":
        masks = has_flash() is False if args.mask_buffers == "auto" else args.mask_buffers == "yes"
        to_nanogpt(args.src, args.dst, masks)
    elif args.command == "from-nanogpt":
        from_nanogpt(args.src, args.dst, args.meta)
    elif args.command == "to-bitgpt":
        to_bitgpt(args.src, args.dst)
    else:
        from_bitgpt(args.src, args.dst)


if __name__ == "__main__":
    main(sys.argv[1:])
