#!/usr/bin/env python3
"""inkling vs llama.cpp, side by side on the same GGUF file, threads and machine.

Prompt processing: one 512-token prompt; decode: 128 greedy tokens after it (llama-bench's
pp512 / tg128). llama.cpp runs through llama-cpp-python (its per-token Python overhead is
included, a few percent at these speeds); inkling runs `inkling bench --json`. Both run back
to back; the ratio is what counts.

llama.cpp runs in a child process of its own per model, so its peak resident memory
(`ru_maxrss`, which includes the Python interpreter's ~30 MiB) and load time are its own.
inkling also runs with three candidates (`-n 3`), reported as total decode throughput over a
single stream's. llama.cpp does the same through its batch API (`--llama-seqs`): the prompt
decoded once as sequence 0, copied to sequences 1 and 2 (`llama_memory_seq_cp`, a unified KV
cache, so the prompt's cells are shared, not copied), then one token per sequence per
`llama_decode`; its three-sequence throughput over its own single stream, measured the same
way, is the peer's figure for the same batching.

Run: cargo build --release && python3 scripts/bench_vs_llamacpp.py [--threads 2] [--models NAME ...]
Chapter length: --prompt 4096 --gen 64 (pp4096, then tg64 after it); --single skips the
three-candidate runs.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
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
    """Runs `llama_child` in a fresh process: (prompt tok/s, decode tok/s, peak RSS MiB, load ms)."""
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--llama-child", path, "--threads", str(threads),
                        "--prompt", str(n_prompt), "--gen", str(n_gen)], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def llama_child(path, threads, n_prompt, n_gen):
    t = time.perf_counter()
    llm = Llama(model_path=path, n_ctx=n_prompt + n_gen + 16, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
    load_ms = (time.perf_counter() - t) * 1e3
    prose = b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. "
    toks = llm.tokenize(prose * (n_prompt // 8 + 16), add_bos=True)[:n_prompt]
    # A prompt shorter than asked would be timed as if it were whole (earlier 4,096-token
    # figures for llama.cpp were inflated this way: 64 repeats are ~2,300 tokens).
    assert len(toks) == n_prompt, (len(toks), n_prompt)
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
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"prompt": best_pp, "decode": best_tg, "rss": rss_mib, "load_ms": load_ms}


def llama_seqs(path, threads, n_prompt, n_gen, n_seq):
    """Decode tok/s, over all sequences, of `n_seq` greedy sequences sharing one prompt."""
    llm = Llama(model_path=path, n_ctx=16, n_threads=threads, verbose=False)  # the weights and tokenizer
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = n_prompt + n_seq * n_gen + 16
    cp.n_batch = cp.n_ubatch = 512
    cp.n_seq_max = n_seq
    cp.kv_unified = True
    cp.n_threads = cp.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(llm._model.model, cp)
    batch = llama_cpp.llama_batch_init(512, 0, n_seq)
    prose = b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. "
    toks = llm.tokenize(prose * (n_prompt // 8 + 16), add_bos=True)[:n_prompt]
    assert len(toks) == n_prompt, (len(toks), n_prompt)
    vocab = llm.n_vocab()

    def argmax(i):
        return int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(vocab,)).argmax())

    def put(i, tok, pos, seq, logits):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, logits
        batch.seq_id[i][0] = seq

    best = 0.0
    for _ in range(2):
        mem = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_clear(mem, True)
        for i, t in enumerate(toks):
            put(i, t, i, 0, i == len(toks) - 1)
        batch.n_tokens = len(toks)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        for s in range(1, n_seq):
            llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
        cur = [argmax(-1)] * n_seq
        t1 = time.perf_counter()
        for step in range(n_gen):
            for s in range(n_seq):
                put(s, cur[s], len(toks) + step, s, True)
            batch.n_tokens = n_seq
            assert llama_cpp.llama_decode(ctx, batch) == 0
            cur = [argmax(s) for s in range(n_seq)]
        best = max(best, n_seq * n_gen / (time.perf_counter() - t1))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    return best


def ours(path, threads, n_prompt, n_gen, candidates=1):
    r = subprocess.run([INKLING, "--model", path, "--threads", str(threads), "bench", "--prompt-tokens", str(n_prompt),
                        "--gen-tokens", str(n_gen), "--repeat", "2", "-n", str(candidates), "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"])
    ap.add_argument("--single", action="store_true", help="skip the three-candidate / three-sequence runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--llama-child", help=argparse.SUPPRESS)
    ap.add_argument("--llama-seqs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.llama_child:
        print(json.dumps(llama_child(args.llama_child, args.threads, args.prompt, args.gen)))
        return
    if args.llama_seqs:
        one, three = (llama_seqs(args.llama_seqs, args.threads, args.prompt, args.gen, n) for n in (1, 3))
        print(json.dumps({"one": one, "three": three}))
        return
    listing = json.loads(subprocess.run([INKLING, "model", "list", "--json"], capture_output=True, text=True, check=True).stdout)
    paths = {r["id"]: r.get("file") for r in listing}
    for name in args.models:
        path = paths.get(name) or name
        if not path or not os.path.exists(path):
            continue
        ll = llama(path, args.threads, args.prompt, args.gen)
        lp, lt = ll["prompt"], ll["decode"]
        o = ours(path, args.threads, args.prompt, args.gen)
        if args.single:
            print(json.dumps({
                "model": name, "threads": args.threads, "prompt": args.prompt, "gen": args.gen,
                "llama_cpp": {"prompt_tok_s": round(lp, 1), "decode_tok_s": round(lt, 1), "peak_rss_mib": round(ll["rss"])},
                "inkling": {"prompt_tok_s": round(o["prompt_tokens_per_s"], 1), "decode_tok_s": round(o["decode_tokens_per_s"], 1),
                            "peak_rss_mib": round(o["peak_rss_mib"])},
                "ratio": {"prompt": round(o["prompt_tokens_per_s"] / lp, 2), "decode": round(o["decode_tokens_per_s"] / lt, 2),
                          "rss": round(o["peak_rss_mib"] / ll["rss"], 2)},
            }), flush=True)
            continue
        o3 = ours(path, args.threads, args.prompt, args.gen, candidates=3)
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--llama-seqs", path, "--threads", str(args.threads),
                            "--prompt", str(args.prompt), "--gen", str(args.gen)], capture_output=True, text=True, check=True)
        seqs = json.loads(r.stdout.strip().splitlines()[-1])
        print(json.dumps({
            "model": name, "threads": args.threads,
            "llama_cpp": {"prompt_tok_s": round(lp, 1), "decode_tok_s": round(lt, 1), "peak_rss_mib": round(ll["rss"]), "load_ms": round(ll["load_ms"]),
                          "batch_api_decode_tok_s_1_sequence": round(seqs["one"], 1), "batch_api_decode_tok_s_3_sequences": round(seqs["three"], 1)},
            "inkling": {"prompt_tok_s": round(o["prompt_tokens_per_s"], 1), "decode_tok_s": round(o["decode_tokens_per_s"], 1),
                        "decode_tok_s_3_candidates": round(o3["decode_tokens_per_s"], 1),
                        "ttft_ms": round(o["time_to_first_token_ms"]), "peak_rss_mib": round(o["peak_rss_mib"]), "load_ms": round(o["load_ms"])},
            "ratio": {"prompt": round(o["prompt_tokens_per_s"] / lp, 2), "decode": round(o["decode_tokens_per_s"] / lt, 2),
                      "three_candidates_over_one": round(o3["decode_tokens_per_s"] / o["decode_tokens_per_s"], 2),
                      "llama_cpp_three_sequences_over_one": round(seqs["three"] / seqs["one"], 2),
                      "three_candidates_vs_llama_cpp_three_sequences": round(o3["decode_tokens_per_s"] / seqs["three"], 2),
                      "rss": round(o["peak_rss_mib"] / ll["rss"], 2)},
        }))


if __name__ == "__main__":
    main()
