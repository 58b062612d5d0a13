#!/usr/bin/env python3
"""Pretraining side by side: `inkling train gpt` against an equivalent GPT written in PyTorch,
same corpus, configuration, threads and machine, back to back.

The PyTorch model is nanoGPT's layout (pre-norm blocks, fused QKV, GELU MLP of width 4d,
LayerNorm without bias, learned positions, weight-tied output), initialised the same way
(N(0, 0.02), residual projections scaled by 1/sqrt(2 layers)), trained with AdamW
(betas 0.9/0.99, weight decay 0.1 on matrices only), warmup + cosine learning rate,
gradient clipping at 1.0, 90/10 train/validation split by position, character tokens.

    python3 scripts/train_side_by_side.py --inkling target/release/inkling \
        --corpus ../shared/data/tinyshakespeare.txt --iters 2000 --threads 2

Needs `torch` (and numpy) in the running Python. Prints both sides and the ratios, and one
JSON line with everything for BENCHMARKS.md.
"""
import argparse, json, math, os, re, subprocess, sys, tempfile, time


def pytorch_run(text, a):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n_val = round(len(data) * 0.1)
    train, val = data[: len(data) - n_val], data[len(data) - n_val :]
    V, T, d, L, H, B = len(chars), a.block, a.embd, a.layers, a.heads, a.batch

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d, bias=False)
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.proj = nn.Linear(d, d, bias=False)
            self.ln2 = nn.LayerNorm(d, bias=False)
            self.up = nn.Linear(d, 4 * d, bias=False)
            self.down = nn.Linear(4 * d, d, bias=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            q, k, v = (z.view(b, t, H, d // H).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V, d)
            self.wpe = nn.Embedding(T, d)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.lnf = nn.LayerNorm(d, bias=False)
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, 0.0, 0.02)
            for blk in self.blocks:
                for m in (blk.proj, blk.down):
                    nn.init.normal_(m.weight, 0.0, 0.02 / math.sqrt(2 * L))

        def forward(self, idx, targets):
            t = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(t))
            for blk in self.blocks:
                x = blk(x)
            logits = self.lnf(x) @ self.wte.weight.T
            return F.cross_entropy(logits.view(-1, V), targets.view(-1))

    model = GPT()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.99))

    def lr_at(it):
        if it < a.warmup:
            return a.lr * (it + 1) / (a.warmup + 1)
        if it > a.iters:
            return a.min_lr
        r = (it - a.warmup) / (a.iters - a.warmup)
        return a.min_lr + 0.5 * (1 + math.cos(math.pi * r)) * (a.lr - a.min_lr)

    def get_batch(split):
        src = train if split == "train" else val
        ix = torch.randint(len(src) - T - 1, (B,))
        return torch.stack([src[i : i + T] for i in ix]), torch.stack([src[i + 1 : i + T + 1] for i in ix])

    @torch.no_grad()
    def estimate(split):
        model.eval()
        losses = [model(*get_batch(split)).item() for _ in range(a.eval_iters)]
        model.train()
        return sum(losses) / len(losses)

    train_s = 0.0
    for it in range(a.iters):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = get_batch("train")
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        train_s += time.perf_counter() - t0
    return {"val_loss": estimate("val"), "train_loss": estimate("train"), "ms_per_iter": train_s * 1e3 / a.iters, "torch": torch.__version__}


def inkling_run(a):
    with tempfile.TemporaryDirectory() as out:
        cmd = [a.inkling, "--threads", str(a.threads), "train", "gpt", "--corpus", a.corpus, "--out", os.path.join(out, "run"),
               "--tokenizer", "char", "--layers", str(a.layers), "--heads", str(a.heads), "--embd", str(a.embd),
               "--block", str(a.block), "--batch", str(a.batch), "--iters", str(a.iters), "--lr", str(a.lr),
               "--min-lr", str(a.min_lr), "--warmup", str(a.warmup), "--eval-interval", str(a.iters),
               "--eval-iters", str(a.eval_iters), "--seed", str(a.seed), "--json"]
        env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            sys.exit(f"inkling failed:\n{p.stderr}")
        evals = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        m = re.search(r"\(([\d.]+) ms/iter\)", p.stderr)
        return {"val_loss": evals[-1]["val_loss"], "train_loss": evals[-1]["train_loss"], "ms_per_iter": float(m.group(1))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inkling", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-pytorch", action="store_true")
    a = ap.parse_args()
    text = open(a.corpus, encoding="utf-8").read()
    t0 = time.perf_counter()
    ink = inkling_run(a)
    ink["wall_s"] = time.perf_counter() - t0
    print(f"inkling : val loss {ink['val_loss']:.4f}  train loss {ink['train_loss']:.4f}  {ink['ms_per_iter']:.1f} ms/iter  ({ink['wall_s']:.0f} s wall)")
    result = {"config": vars(a), "inkling": ink}
    if not a.skip_pytorch:
        t0 = time.perf_counter()
        pt = pytorch_run(text, a)
        pt["wall_s"] = time.perf_counter() - t0
        print(f"pytorch : val loss {pt['val_loss']:.4f}  train loss {pt['train_loss']:.4f}  {pt['ms_per_iter']:.1f} ms/iter  ({pt['wall_s']:.0f} s wall, torch {pt['torch']})")
        print(f"ratio   : inkling trains at {pt['ms_per_iter'] / ink['ms_per_iter']:.2f}x PyTorch's speed; val loss difference {ink['val_loss'] - pt['val_loss']:+.4f}")
        result["pytorch"] = pt
    print(json.dumps(result))


if __name__ == "__main__":
    main()
