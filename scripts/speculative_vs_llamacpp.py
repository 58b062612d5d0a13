#!/usr/bin/env python3
"""Prompt-lookup decoding in inkling beside llama.cpp's own (llama-cpp-python's
`LlamaPromptLookupDecoding`, the peer's vendored llama.cpp), on the same GGUF, the same chat
prompts and greedy decoding, 2 threads each. For each edit: decode tok/s plain and with lookup,
for both engines, and the ratio of each to its own plain decoding.

    python3 scripts/speculative_vs_llamacpp.py --gguf MODEL.gguf [--python PEER_PYTHON]

inkling's figures are its own `timings.decode_tokens_per_s` (`inkling generate --instruct
--greedy --json`); llama.cpp's are timed from its first streamed token to its last.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("INKLING_BIN", os.path.join(ROOT, "target", "release", "inkling"))
SAMPLES = os.path.join(ROOT, "..", "shared", "data", "sample-prompts.jsonl")
LONG = os.path.join(ROOT, "scripts", "data", "long-edits.jsonl")
ASK = {
    "tighten": "Tighten this passage. Reply with the tightened passage only.",
    "rewrite": "Rewrite this passage in a {style} style. Reply with the rewritten passage only.",
    "proofread": "Correct the spelling and grammar of this passage. Reply with the corrected passage only.",
}

PEER = r"""
import json, sys, time
from llama_cpp import Llama
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
path, prompts = sys.argv[1], json.loads(sys.stdin.read())
out = []
for lookup in (False, True):
    kw = {"draft_model": LlamaPromptLookupDecoding(num_pred_tokens=10)} if lookup else {}
    llm = Llama(model_path=path, n_ctx=4096, n_threads=2, n_threads_batch=2, verbose=False, **kw)
    for p in prompts:
        t_first, n, text = None, 0, ""
        for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": p}], temperature=0.0, top_k=1, max_tokens=200, stream=True):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                n += 1
                text += piece
                if t_first is None:
                    t_first = time.perf_counter()
        t_last = time.perf_counter()
        out.append({"lookup": lookup, "tps": (n - 1) / max(t_last - t_first, 1e-9) if n > 1 else 0.0, "text": text})
    del llm
print(json.dumps(out))
"""


def prompts():
    for path in (SAMPLES, LONG):
        for line in open(path, encoding="utf-8"):
            s = json.loads(line)
            if s["tool"] in ASK:
                ask = ASK[s["tool"]].format(style=s.get("style", "plain"))
                yield f"{s['tool']}{'/' + s['style'] if 'style' in s else ''} ({s['lang']}, {len(s['input'])} chars)", f"{ask}\n\n{s['input']}"


def inkling(gguf, prompt, mode):
    cmd = [BIN, "--model", gguf, "--threads", "2", "generate", "--instruct", "--greedy", "--json", "--max-tokens", "200", "--speculative", mode, prompt]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"inkling failed: {p.stderr[-400:]}")
    out = json.loads(p.stdout)
    return out["timings"], out["candidates"][0]["text"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--python", default=os.environ.get("INKLING_LLAMA_SERVER_PYTHON", os.path.expanduser("~/.cache/inkling/peer-venv/bin/python")))
    args = ap.parse_args()
    cases = list(prompts())
    peer = subprocess.run([args.python, "-c", PEER, args.gguf], input=json.dumps([p for _, p in cases]), capture_output=True, text=True)
    if peer.returncode != 0:
        sys.exit(f"llama-cpp-python failed: {peer.stderr[-600:]}")
    runs = json.loads(peer.stdout)
    plain, lookup = runs[: len(cases)], runs[len(cases):]
    print(f"{'edit':<34} {'inkling off':>11} {'lookup':>8} {'gain':>6}   {'llama.cpp off':>13} {'lookup':>8} {'gain':>6}   kept")
    for (label, prompt), lp, ll in zip(cases, plain, lookup):
        t_off, text_off = inkling(args.gguf, prompt, "off")
        t_on, text_on = inkling(args.gguf, prompt, "lookup")
        assert text_off == text_on, f"{label}: inkling's lookup changed the text"
        a, b = t_off["decode_tokens_per_s"], t_on["decode_tokens_per_s"]
        kept = f"{t_on['draft_accepted']}/{t_on['draft_tokens']}"
        print(f"{label:<34} {a:11.1f} {b:8.1f} {b / a:5.2f}x   {lp['tps']:13.1f} {ll['tps']:8.1f} {ll['tps'] / max(lp['tps'], 1e-9):5.2f}x   {kept}", flush=True)


if __name__ == "__main__":
    main()
