#!/usr/bin/env python3
"""Perplexity of inkling and llama.cpp over the same text, tokens and windows.

The text is the start of ../shared/data/tinyshakespeare.txt; both sides score its first
20,000 tokens (no BOS) in non-overlapping 512-token windows, each window from an empty cache,
every token but a window's first predicted from the ones before it in that window (what
`inkling eval perplexity --window 512 --stride 512` does). llama.cpp returns every position's
logits through llama-cpp-python's `logits_all=True`. Both tokenize the text themselves; the
script checks that they made the same tokens.

Run: cargo build --release && python3 scripts/perplexity_vs_llamacpp.py [--models NAME ...]
"""
import argparse
import json
import math
import os
import subprocess
import tempfile

import numpy as np
from llama_peer import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INKLING = os.path.join(ROOT, "target", "release", "inkling")
CORPUS = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")


def llama_perplexity(path, text, n_tokens, window, threads):
    llm = Llama(model_path=path, n_ctx=window, n_batch=window, n_threads=threads, n_threads_batch=threads, logits_all=True, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=False, special=False)[:n_tokens]
    nll, scored = 0.0, 0
    for begin in range(0, len(tokens) - 1, window):
        chunk = tokens[begin:begin + window]
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[:len(chunk)], dtype=np.float64)
        for j in range(1, len(chunk)):
            row = logits[j - 1]
            m = row.max()
            nll -= row[chunk[j]] - m - math.log(np.exp(row - m).sum())
            scored += 1
    return math.exp(nll / scored), scored, tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"])
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with open(CORPUS, encoding="utf-8") as f:
        text = f.read()[: args.tokens * 8]
    listing = json.loads(subprocess.run([INKLING, "model", "list", "--json"], capture_output=True, text=True, check=True).stdout)
    paths = {r["id"]: r.get("file") for r in listing}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as tmp:
        tmp.write(text)
    for name in args.models:
        path = paths.get(name) or name
        if not path or not os.path.exists(path):
            continue
        lp, lscored, ltokens = llama_perplexity(path, text, args.tokens, args.window, args.threads)
        r = subprocess.run([INKLING, "--model", path, "--threads", str(args.threads), "eval", "perplexity", "--corpus", tmp.name,
                            "--window", str(args.window), "--stride", str(args.window), "--max-tokens", str(args.tokens), "--json"],
                           capture_output=True, text=True, check=True)
        ours = json.loads(r.stdout)["result"]
        ids = subprocess.run([INKLING, "--model", path, "tokenize", "-"], input=text, capture_output=True, text=True, check=True).stdout
        ids = json.loads(ids)["ids"]
        # `inkling tokenize` adds the model's BOS as generation does (Gemma); eval does not.
        if ids and ltokens and ids[0] != ltokens[0]:
            ids = ids[1:]
        same = ids[: args.tokens] == list(ltokens)
        print(json.dumps({
            "model": name, "tokens_scored": {"llama_cpp": lscored, "inkling": ours["tokens_scored"]}, "same_tokens": same,
            "perplexity": {"llama_cpp": round(lp, 4), "inkling": round(ours["perplexity"], 4)},
            "difference_percent": round(100 * (ours["perplexity"] / lp - 1), 3),
        }))
    os.unlink(tmp.name)


if __name__ == "__main__":
    main()
