#!/usr/bin/env python3
"""Runs every writer input in ../shared/data/sample-prompts.jsonl through its tool and prints
what came back and how long it took (a smoke test with real prompts, English and Chinese).

    cargo build --release && python3 scripts/try_samples.py [--model NAME] [-n 3]
"""
import argparse
import json
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "..", "shared", "data", "sample-prompts.jsonl")
BIN = os.environ.get("INKLING_BIN", os.path.join(ROOT, "target", "release", "inkling"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--samples", default=SAMPLES)
    args = ap.parse_args()
    base = [BIN] + (["--model", args.model] if args.model else [])
    for line in open(args.samples, encoding="utf-8"):
        s = json.loads(line)
        tool, text = s["tool"], s["input"]
        cmd = base + [tool]
        if tool == "email":
            cmd = base + ["business", "--kind", "email"]
        if tool == "rewrite" and s.get("style"):
            cmd += ["--style", s["style"]]
        if tool == "proofread":
            cmd += ["--json", text]
        else:
            cmd += [text, "-n", str(args.n), "--seed", "1", "--json"]
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.time() - t0
        if p.returncode != 0:
            print(f"{tool:<10} {s['lang']}  FAILED {dt:5.1f}s  {p.stderr.strip()[:200]}")
            continue
        out = json.loads(p.stdout)
        if tool == "proofread":
            f = out["findings"]
            print(f"{tool:<10} {s['lang']}  {dt:5.1f}s  {len(f)} findings: " + "; ".join(x["original"] for x in f))
            continue
        cands = out["candidates"]
        first = cands[0] if cands else {}
        summary = ""
        if first.get("items"):
            summary = f"{len(first['items'])} items"
        elif first.get("json"):
            summary = f"json with {len(first['json'])} fields"
        if first.get("meets_length") is not None:
            summary += f" length goal met: {first['meets_length']} ({len(first['text'])} vs {len(text)} chars)"
        shown = first.get("text", "").replace("\n", " / ")[:110]
        print(f"{tool:<10} {s['lang']}  {dt:5.1f}s  {len(cands)} cand, {out['duplicates_dropped']} dup  {summary}  | {shown}")


if __name__ == "__main__":
    main()
