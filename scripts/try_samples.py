#!/usr/bin/env python3
"""Runs every writer input in ../shared/data/sample-prompts.jsonl through its tool and checks
what a writer would: the answer is in the input's language, is the text rather than talk about
it, lists have the items asked for, tighten is shorter and expand longer, profiles hold usable
values that keep the input's facts, proofread finds the known errors. Prints one line per
sample, then a table of checks passed per tool.

    cargo build --release && python3 scripts/try_samples.py [--model NAME] [-n 3]
"""
import argparse
import json
import os
import re
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "..", "shared", "data", "sample-prompts.jsonl")
BIN = os.environ.get("INKLING_BIN", os.path.join(ROOT, "target", "release", "inkling"))
# An instruct model that leaves the story: assistant talk, or a quiz/maths turn.
ASSISTANT_TALK = re.compile(r"(as an ai|作为一个?(ai|人工智能)|语言模型|i'm sorry|i cannot|我无法|抱歉|question:|问题[是：:]|to determine|\*\*)", re.I)
# Talk about the edit, anywhere a line starts (checked independently of inkling's own cleaning).
TALK_ABOUT_EDIT = re.compile(
    r"(^|\n)\s*(note:|i (have |'ve )?(removed|simplified|changed|kept|cut|rewrote|replaced|made|added)|(in )?this (version|rewrite|rewritten|reworked|revised)"
    r"|here is|here's|you can|sure[,!]|certainly|注[：:]|修改后|以下是)",
    re.I,
)


def cjk_share(text):
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if "\u3400" <= c <= "\u9fff" or "\u3040" <= c <= "\u30ff") / len(letters)


def same_language(lang, text):
    share = cjk_share(text)
    return share >= 0.3 if lang == "zh" else share < 0.1


def checks(sample, out):
    """(name, passed) for what this tool's answer must do."""
    tool, lang, text = sample["tool"], sample["lang"], sample["input"]
    if tool == "proofread":
        return [("finds >= 3 errors", len(out["findings"]) >= 3)]
    cands = out["candidates"]
    if not cands:
        return [("gives an answer", False)]
    best = cands[0]
    answer = best["text"]
    result = [("clean (no flags)", not best.get("flags"))]
    if best.get("json") is not None:
        values = " ".join(str(v) for v in best["json"].values())
        result.append(("input's language", same_language(lang, values)))
        words = [w for w in re.findall(r"\w{4,}", text.lower()) if w not in {"that", "with", "from", "into", "runs", "who", "now"}]
        result.append(("keeps the input's facts", any(w in values.lower() for w in words) if lang == "en" else any(ch in values for ch in text)))
    else:
        result.append(("input's language", same_language(lang, answer)))
    if tool in ("tighten", "rewrite", "expand", "email"):
        result.append(("the text, not talk", not TALK_ABOUT_EDIT.search(answer)))
    if tool == "continue":
        result.append(("stays in the story", not ASSISTANT_TALK.search(answer)))
    if tool in ("brainstorm", "titles"):
        result.append((">= 6 items", len(best.get("items", [])) >= 6))
    if best.get("meets_length") is not None:
        result.append(("length goal", best["meets_length"]))
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--samples", default=SAMPLES)
    args = ap.parse_args()
    base = [BIN] + (["--model", args.model] if args.model else [])
    table = {}
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
        key = f"{tool} {s['lang']}"
        if p.returncode != 0:
            print(f"{key:<14} FAILED {dt:5.1f}s  {p.stderr.strip()[:200]}")
            table[key] = [("runs", False)]
            continue
        out = json.loads(p.stdout)
        table[key] = checks(s, out)
        failed = [name for name, ok in table[key] if not ok]
        verdict = "ok" if not failed else "FAIL: " + ", ".join(failed)
        if tool == "proofread":
            shown = "; ".join(x["original"] for x in out["findings"])
        else:
            first = out["candidates"][0] if out["candidates"] else {}
            shown = (json.dumps(first["json"], ensure_ascii=False) if first.get("json") else first.get("text", "")).replace("\n", " / ")[:100]
        print(f"{key:<14} {dt:5.1f}s  {verdict:<40} | {shown}")
    passed = sum(ok for r in table.values() for _, ok in r)
    total = sum(len(r) for r in table.values())
    clean = sum(all(ok for _, ok in r) for r in table.values())
    print(f"\n{args.model or 'default model'}: {clean}/{len(table)} samples pass every check; {passed}/{total} checks")


if __name__ == "__main__":
    main()
