#!/usr/bin/env python3
"""A bounded load test of `inkling serve`, loopback only.

    python3 scripts/load_test.py --url http://127.0.0.1:8077 --clients 32 --requests 96 [--pid PID]

CLIENTS threads share REQUESTS streaming /v1/completions requests. A 429 is the server's
deliberate answer to a full queue: the client waits the Retry-After it was given and tries
again (at most --retries times). Anything else that is not a complete stream ending in
[DONE] is an error. Prints a JSON summary (latencies, tokens/s, 429s, errors, the server's
peak memory when --pid is given) and exits non-zero on any error.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--clients", type=int, default=32)
ap.add_argument("--requests", type=int, default=96)
ap.add_argument("--max-tokens", type=int, default=16)
ap.add_argument("--retries", type=int, default=50)
ap.add_argument("--pid", type=int)
ap.add_argument("--key")
args = ap.parse_args()

u = urllib.parse.urlparse(args.url)
if u.hostname not in ("127.0.0.1", "localhost", "::1"):
    sys.exit("the load test only runs against a server on this machine (loopback)")

lock = threading.Lock()
todo = list(range(args.requests))
stats = {"ok": 0, "throttled": 0, "errors": [], "latency_ms": [], "first_token_ms": [], "tokens": 0}


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None


def one(i):
    body = json.dumps({"prompt": f"Story {i}: the lighthouse", "max_tokens": args.max_tokens, "stream": True, "seed": i, "stream_options": {"include_usage": True}})
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    for _ in range(args.retries + 1):
        t0 = time.time()
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        try:
            conn.request("POST", "/v1/completions", body, headers)
            r = conn.getresponse()
            if r.status == 429:
                wait = float(r.getheader("Retry-After") or "1")
                r.read()
                with lock:
                    stats["throttled"] += 1
                time.sleep(wait)
                continue
            if r.status != 200:
                return f"request {i}: HTTP {r.status} {r.read()[:200]!r}"
            first, done, usage = None, False, None
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                v = json.loads(data)
                if "error" in v:
                    return f"request {i}: {v['error']}"
                if first is None and any(c.get("text") for c in v.get("choices", [])):
                    first = time.time()
                if v.get("usage"):
                    usage = v["usage"]
            if not done:
                return f"request {i}: the stream ended without [DONE]"
            with lock:
                stats["ok"] += 1
                stats["latency_ms"].append((time.time() - t0) * 1e3)
                if first:
                    stats["first_token_ms"].append((first - t0) * 1e3)
                stats["tokens"] += usage["completion_tokens"] if usage else 0
            return None
        except Exception as e:  # noqa: BLE001 - every failure is reported, none hidden
            return f"request {i}: {e!r}"
        finally:
            conn.close()
    return f"request {i}: still throttled after {args.retries} retries"


def client():
    while True:
        with lock:
            if not todo:
                return
            i = todo.pop()
        err = one(i)
        if err:
            with lock:
                stats["errors"].append(err)


t0 = time.time()
threads = [threading.Thread(target=client) for _ in range(args.clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.time() - t0


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else None


summary = {
    "clients": args.clients,
    "requests": args.requests,
    "completed": stats["ok"],
    "throttled_429": stats["throttled"],
    "errors": len(stats["errors"]),
    "wall_s": round(wall, 2),
    "requests_per_s": round(stats["ok"] / wall, 2),
    "completion_tokens_per_s": round(stats["tokens"] / wall, 1),
    "latency_ms_p50": pct(stats["latency_ms"], 0.5),
    "latency_ms_p95": pct(stats["latency_ms"], 0.95),
    "first_token_ms_p50": pct(stats["first_token_ms"], 0.5),
    "server_peak_rss_mib": round(peak_rss_mib(args.pid), 1) if args.pid and peak_rss_mib(args.pid) else None,
}
print(json.dumps(summary, indent=2))
for e in stats["errors"][:10]:
    print("error:", e, file=sys.stderr)
sys.exit(1 if stats["errors"] or stats["ok"] != args.requests else 0)
