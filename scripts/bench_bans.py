#!/usr/bin/env python3
"""Banned phrases (issue 20): how often the built-in list's phrases turn up in fiction from the
default model, with the list on and off, and what banning costs in decode speed.

    cargo build --release && python3 scripts/bench_bans.py [--model NAME] [--prompts 10] [-n 10] [--tokens 200] [--ban PHRASE ...]

Each story opening runs twice with the same seed, bans off (`--no-default-bans`) then on,
one right after the other, so the host's drift hits both alike. Counted: occurrences of the
built-in phrases and of each --ban phrase (banned with the list on, as a writer's own list
would be) in the output (matched as inkling matches them: case-insensitive, whole
words at Latin ends, any whitespace between words), decode tok/s (the engine's own
`timings.decode_tokens_per_s`), and the rewinds banning took.
"""
import argparse
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("INKLING_BIN", os.path.join(ROOT, "target", "release", "inkling"))
LIST = os.path.join(ROOT, "crates", "inkling-craft", "data", "banned.txt")

OPENINGS = [
    "Once upon a time, in a quiet village by the sea,",
    "The queen's youngest daughter was the only one who could hear the stones.",
    "Rain had fallen on the city for forty days when the stranger arrived.",
    "The old wizard leaned on his staff and looked at the apprentice.",
    "She had never seen the northern lights until the night her brother vanished.",
    "In the tavern at the edge of the forest, a hooded figure sat alone.",
    "The letter arrived on a Tuesday, sealed with black wax.",
    "Captain Reyes studied the star map while the engines hummed below.",
    "The dragon had slept beneath the mountain for a thousand years.",
    "Nobody in the academy knew where the new girl had come from.",
]


def patterns(extra):
    out = []
    for line in [*open(LIST, encoding="utf-8"), *extra]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > 1 and line.startswith("/") and line.endswith("/"):
            out.append((line, re.compile(line[1:-1], re.I)))
            continue
        words = [re.escape(w).replace("'", "['\u2019]") for w in line.split()]
        body = r"\s+".join(words)
        if line[0].isascii() and line[0].isalnum():
            body = r"\b" + body
        if line[-1].isascii() and line[-1].isalnum():
            body += r"\b"
        out.append((line, re.compile(body, re.I)))
    return out


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}… failed: {p.stderr.strip()[-400:]}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--prompts", type=int, default=10)
    ap.add_argument("-n", type=int, default=10, help="candidates per opening")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--ban", action="append", default=[], help="also ban this phrase in the 'on' runs")
    a = ap.parse_args()
    base = [BIN] + (["--model", a.model] if a.model else [])
    pats = patterns(a.ban)
    totals = {"off": {}, "on": {}}
    rates = {"off": [], "on": []}
    rewinds = {"rewinds": 0, "tokens": 0, "deepest": 0, "banned_finish": 0}
    candidates = 0
    for i, opening in enumerate(OPENINGS[: a.prompts]):
        for mode in ["off", "on"]:
            cmd = base + ["generate", opening, "-n", str(a.n), "--max-tokens", str(a.tokens), "--ignore-eos", "--seed", str(100 + i), "--json"]
            if mode == "off":
                cmd.append("--no-default-bans")
            else:
                for b in a.ban:
                    cmd += ["--ban", b]
            g = run(cmd)
            rates[mode].append(g["timings"]["decode_tokens_per_s"])
            for c in g["candidates"]:
                for name, rx in pats:
                    k = len(rx.findall(c["text"]))
                    if k:
                        totals[mode][name] = totals[mode].get(name, 0) + k
                if mode == "on":
                    candidates += 1
                    rewinds["banned_finish"] += c["finish_reason"] == "banned"
            if mode == "on":
                t = g["timings"]
                rewinds["rewinds"] += t["ban_rewinds"]
                rewinds["tokens"] += t["ban_rewound_tokens"]
                rewinds["deepest"] = max(rewinds["deepest"], t["ban_deepest_rewind"])
        print(f"opening {i + 1}: off {rates['off'][-1]:.1f} tok/s, on {rates['on'][-1]:.1f} tok/s", flush=True)
    mean = lambda v: sum(v) / max(len(v), 1)
    result = {
        "candidates_per_mode": candidates,
        "tokens_per_candidate": a.tokens,
        "phrases_without_bans": sum(totals["off"].values()),
        "phrases_with_bans": sum(totals["on"].values()),
        "which_without_bans": dict(sorted(totals["off"].items(), key=lambda kv: -kv[1])),
        "which_with_bans": totals["on"],
        "decode_tok_s_off": round(mean(rates["off"]), 2),
        "decode_tok_s_on": round(mean(rates["on"]), 2),
        "speed_ratio_on_over_off": round(mean(rates["on"]) / max(mean(rates["off"]), 1e-9), 3),
        "rewinds": rewinds,
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
