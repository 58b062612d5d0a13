#!/usr/bin/env python3
"""Speculative decoding by prompt lookup against plain decoding, on the writer inputs in
../shared/data/sample-prompts.jsonl: each tool run with `--speculative off` and then
`--speculative lookup`, same seed, one after the other. Checks the answers are the same text
and prints decode tok/s for both, the ratio, and how many guessed tokens were kept.

    cargo build --release && python3 scripts/bench_speculative.py [--model NAME] [--tools tighten,rewrite]

The timed figure is the engine's own decode rate (`timings.decode_tokens_per_s`, all rounds of
a list's carry-on included in the last one only); the best of --repeat runs is kept.
"""
import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "..", "shared", "data", "sample-prompts.jsonl")
BIN = os.environ.get("INKLING_BIN", os.path.join(ROOT, "target", "release", "inkling"))


def command(base, sample, mode):
    tool = sample["tool"]
    cmd = base + (["business", "--kind", "email"] if tool == "email" else [tool])
    if "style" in sample:
        cmd += ["--style", sample["style"]]
    return cmd + [sample["input"], "--seed", "1", "--json", "--speculative", mode]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}… failed: {p.stderr.strip()[-400:]}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--tools", default="tighten,rewrite,expand,continue,email", help="comma-separated; proofread's model pass is not a tool run")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--samples", default=SAMPLES)
    args = ap.parse_args()
    base = [BIN] + (["--model", args.model] if args.model else [])
    wanted = set(args.tools.split(","))
    rows = []
    for line in open(args.samples, encoding="utf-8"):
        s = json.loads(line)
        if s["tool"] not in wanted:
            continue
        best = {}
        texts = {}
        for _ in range(max(1, args.repeat)):
            for mode in ("off", "lookup"):
                out = run(command(base, s, mode))
                t = out["timings"]
                texts[mode] = [c["text"] for c in out["candidates"]]
                if mode not in best or t["decode_tokens_per_s"] > best[mode]["decode_tokens_per_s"]:
                    best[mode] = t
        same = texts["off"] == texts["lookup"]
        off, on = best["off"], best["lookup"]
        kept = f"{on.get('draft_accepted', 0)}/{on.get('draft_tokens', 0)}"
        ratio = on["decode_tokens_per_s"] / max(off["decode_tokens_per_s"], 1e-9)
        label = f"{s['tool']}{'/' + s['style'] if 'style' in s else ''} ({s['lang']})"
        rows.append((label, off["decode_tokens_per_s"], on["decode_tokens_per_s"], ratio, kept, same))
        print(f"{label:<22} off {off['decode_tokens_per_s']:6.1f} tok/s  lookup {on['decode_tokens_per_s']:6.1f} tok/s  {ratio:4.2f}x  kept {kept:<9} {'same text' if same else 'TEXT DIFFERS'}", flush=True)
    if not all(r[5] for r in rows):
        raise SystemExit("speculative decoding changed an answer")


if __name__ == "__main__":
    main()
