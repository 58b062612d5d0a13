#!/usr/bin/env python3
"""inkling vs llama.cpp, side by side on the same GGUF file, threads and machine.

Prompt processing: one 512-token prompt; decode: 128 greedy tokens after it (llama-bench's
pp512 / tg128). llama.cpp runs through llama-cpp-python (its per-token Python overhead is
included, a few percent at these speeds); inkling runs `inkling bench --json`. Both run back
to back; the ratio is what counts.

Run: cargo build --release && python3 scripts/bench_vs_llamacpp.py [--threads 2] [--models NAME ...]
"""
import argparse
import json
import os
import subprocess
import time

import llama_cpp
import numpy as np
from llama_peer import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INKLING = os.path.join(ROOT, "target", "release", "inkling")


def last_argmax(llm):
    # The last position's logits straight from llama.cpp (no per-step copy of all scores).
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return int(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).argmax())


def llama(path, threads, n_prompt, n_gen):
    llm = Llama(model_path=path, n_ctx=n_prompt + n_gen + 16, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
    prose = b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. "
    toks = llm.tokenize(prose * 64, add_bos=True)[:n_prompt]
    best_pp = best_tg = 0.0
    for _ in range(2):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(toks)
        pp = n_prompt / (time.perf_counter() - t0)
        t1 = time.perf_counter()
        tok = last_argmax(llm)
        for _ in range(n_gen):
            llm.eval([tok])
            tok = last_argmax(llm)
        tg = n_gen / (time.perf_counter() - t1)
        best_pp, best_tg = max(best_pp, pp), max(best_tg, tg)
    return best_pp, best_tg


def ours(path, threads, n_prompt, n_gen):
    r = subprocess.run([INKLING, "--model", path, "--threads", str(threads), "bench", "--prompt-tokens", str(n_prompt),
                        "--gen-tokens", str(n_gen), "--repeat", "2", "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    args = ap.parse_args()
    listing = json.loads(subprocess.run([INKLING, "model", "list", "--json"], capture_output=True, text=True, check=True).stdout)
    paths = {r["id"]: r.get("file") for r in listing}
    for name in args.models:
        path = paths.get(name) or name
        if not path or not os.path.exists(path):
            continue
        lp, lt = llama(path, args.threads, args.prompt, args.gen)
        o = ours(path, args.threads, args.prompt, args.gen)
        print(json.dumps({
            "model": name, "threads": args.threads,
            "llama_cpp": {"prompt_tok_s": round(lp, 1), "decode_tok_s": round(lt, 1)},
            "inkling": {"prompt_tok_s": round(o["prompt_tokens_per_s"], 1), "decode_tok_s": round(o["decode_tokens_per_s"], 1),
                        "ttft_ms": round(o["time_to_first_token_ms"]), "peak_rss_mib": round(o["peak_rss_mib"]), "load_ms": round(o["load_ms"])},
            "ratio": {"prompt": round(o["prompt_tokens_per_s"] / lp, 2), "decode": round(o["decode_tokens_per_s"] / lt, 2)},
        }))


if __name__ == "__main__":
    main()
