#!/usr/bin/env python3
"""check_hf_doge.py: loads a dmabench checkpoint with HF transformers'
DogeForCausalLM and compares its logits with `dmabench forward` on the same
token ids.

Not part of `make test`: dmabench itself never needs Python. Run it on a machine
with PyTorch, transformers (>= 5, which has Doge with q_norm/k_norm) and
safetensors:

    make
    ./build/dmabench train --config model/configs/tiny-dma.json --data FILE --out /tmp/ck
    python3 scripts/check_hf_doge.py --model /tmp/ck [--dmabench ./build/dmabench]

Works for dma, mha and swa checkpoints (mha and swa are saved as Doge with
A = 0 and dt_proj = 0, keep_window_size >= the context, and swa with
"sliding_window": w). nsa has no counterpart in transformers.

Ties: dmabench breaks a tie in dma's scores toward the more recent key
(docs/attention.md); transformers' torch.topk breaks it in an implementation-
defined way. Exact ties happen (1) in a fresh dma model (A = 0 everywhere: every
key scores 1), where the script uses a length <= keep_window_size, and (2) in
layer 0 for a repeated token (its value states, hence its score, depend on the
token alone), so the script draws token ids without repetition within a row.

Exit status: 0 when the logits agree within --tol (max abs difference relative
to the largest logit), 1 when they do not, 2 on bad usage.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="dmabench checkpoint folder (config.json + model.safetensors)")
    ap.add_argument("--dmabench", default="./build/dmabench", help="the dmabench binary")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--length", type=int, default=0, help="tokens per row (default: 128, see above for dma)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=2e-4, help="max |diff| / max |logit| allowed")
    ap.add_argument("--attn-impl", default="eager", help="transformers attention implementation (eager, sdpa)")
    a = ap.parse_args()

    try:
        import torch
        from safetensors.torch import load_file, save_file
        from transformers import DogeConfig, DogeForCausalLM
    except ImportError as e:  # pragma: no cover
        print(f"check_hf_doge: needs torch, safetensors and transformers with Doge: {e}", file=sys.stderr)
        return 2

    with open(os.path.join(a.model, "config.json")) as f:
        raw = json.load(f)
    variant = raw.get("attention", {}).get("variant", "dma")
    if variant == "nsa":
        print("check_hf_doge: nsa has no transformers counterpart; nothing to compare", file=sys.stderr)
        return 2
    # our own blocks are not DogeConfig keys
    hf = {k: v for k, v in raw.items() if k not in ("attention", "train")}
    # transformers' strict config fields want floats where JSON may hold integers
    for k in ("rope_theta", "rms_norm_eps", "initializer_range", "hidden_dropout", "attention_dropout"):
        if isinstance(hf.get(k), int) and not isinstance(hf.get(k), bool):
            hf[k] = float(hf[k])
    if isinstance(hf.get("rope_parameters"), dict) and isinstance(hf["rope_parameters"].get("rope_theta"), int):
        hf["rope_parameters"]["rope_theta"] = float(hf["rope_parameters"]["rope_theta"])
    config = DogeConfig(**hf)
    model = DogeForCausalLM.from_pretrained(a.model, config=config, dtype=torch.float32,
                                            attn_implementation=a.attn_impl)
    model.eval()

    # every tensor dmabench wrote must have been used (no silently re-initialised weights)
    sd = load_file(os.path.join(a.model, "model.safetensors"))
    mine = model.state_dict()
    for name, t in sd.items():
        if name not in mine:
            print(f"check_hf_doge: transformers has no tensor '{name}'", file=sys.stderr)
            return 1
        if not torch.equal(mine[name].float(), t.float()):
            print(f"check_hf_doge: tensor '{name}' differs after loading", file=sys.stderr)
            return 1

    L = a.length
    if L <= 0:
        L = min(128, raw["max_position_embeddings"])
        if variant == "dma":
            a_zero = all(float(t.abs().max()) == 0 for n, t in sd.items() if n.endswith(".self_attn.A"))
            if a_zero and L > raw["keep_window_size"]:
                print(f"check_hf_doge: A = 0 everywhere (an untrained dma model): every key ties, so the length is cut "
                      f"to keep_window_size = {raw['keep_window_size']}", file=sys.stderr)
                L = raw["keep_window_size"]
    g = torch.Generator().manual_seed(a.seed)
    V = raw["vocab_size"]
    if L <= V:
        # no token twice in a row: layer 0's value states depend on the token alone, so a
        # repeated token gives dma exactly tied scores, and ties are broken differently
        # (dmabench: the more recent key; torch.topk: implementation-defined)
        ids = torch.stack([torch.randperm(V, generator=g)[:L] for _ in range(a.batch)]).to(torch.int64)
    else:
        ids = torch.randint(0, V, (a.batch, L), generator=g, dtype=torch.int64)
        if variant == "dma":
            print("check_hf_doge: length > vocab_size: tokens repeat, and dma's tied scores may be broken "
                  "differently from transformers' topk", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"input_ids": ids}, inp)
        r = subprocess.run([a.dmabench, "forward", "--model", a.model, "--in", inp, "--out", outp],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"check_hf_doge: dmabench forward failed: {r.stderr.strip()}", file=sys.stderr)
            return 1
        ours = load_file(outp)["logits"]

    # dma: count the queries whose keep-window boundary falls inside an exact tie of
    # z (the w-th and (w+1)-th largest score equal in fp32), where the two tie-breaks
    # may pick different keys; z is taken from transformers' own dt_proj outputs
    dts = []
    hooks = []
    if variant == "dma":
        for layer in model.model.layers:
            hooks.append(layer.self_attn.dt_proj.register_forward_hook(lambda m, i, o: dts.append(o.detach())))
    with torch.no_grad():
        theirs = model(input_ids=ids).logits.float()
    for h in hooks:
        h.remove()
    w = raw.get("keep_window_size", 0)
    if dts and L > w:
        ties = 0
        for li, dt in enumerate(dts):
            A = model.model.layers[li].self_attn.A.detach()
            z = torch.exp(A * torch.nn.functional.softplus(dt)).transpose(-1, -2)  # (B, Hkv, L)
            for i in range(w, L):
                top = torch.sort(z[:, :, : i + 1], dim=-1, descending=True).values
                ties += int((top[..., w - 1] == top[..., w]).sum().item())
        print(f"dma: {ties} (batch row, layer, kv head, query) cells have an exact tie of z at the keep-window boundary"
              f"{' (tie-breaks may differ there)' if ties else ''}")
    diff = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item()
    rel = diff / max(scale, 1e-30)
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    rows = int(((ours - theirs).abs().amax(-1) > a.tol * scale).sum().item())
    print(f"{variant}: {a.batch} x {L} tokens, max |dmabench - transformers| = {diff:.3g} "
          f"(max |logit| {scale:.3g}, relative {rel:.3g}); {rows} of {a.batch * L} positions off by more than "
          f"the tolerance; argmax agreement {100 * agree:.2f}%")
    return 0 if rel <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
