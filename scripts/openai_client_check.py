#!/usr/bin/env python3
"""The official `openai` Python client against `inkling serve`.

    python3 scripts/openai_client_check.py http://127.0.0.1:8077/v1 [API_KEY]

Checks models, completions, chat, streaming, n=3, stop, seed reproducibility and errors the
way a script or a front end (SillyTavern, mikupad) would meet them. Exits non-zero on the
first failure; prints one line per check.
"""
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base, api_key=sys.argv[2] if len(sys.argv) > 2 else "none", max_retries=0, timeout=300)
checks = 0


def check(name, cond, detail=""):
    global checks
    if not cond:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    checks += 1
    print(f"ok   {name}")


models = client.models.list()
model = models.data[0].id
check("models.list names the served model", len(models.data) == 1 and model, models)

a = client.completions.create(model=model, prompt="The lighthouse keeper", max_tokens=16, seed=11, temperature=0.8)
b = client.completions.create(model=model, prompt="The lighthouse keeper", max_tokens=16, seed=11, temperature=0.8)
check("completion has text and usage", a.choices[0].text and a.usage.completion_tokens > 0, a)
check("same seed, same text", a.choices[0].text == b.choices[0].text, (a.choices[0].text, b.choices[0].text))

three = client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, n=3, seed=5, temperature=1.0)
check("n=3 gives three choices", sorted(c.index for c in three.choices) == [0, 1, 2], three)
check("the three differ", len({c.text for c in three.choices}) > 1, [c.text for c in three.choices])

stop_word = a.choices[0].text.split()[1] if len(a.choices[0].text.split()) > 1 else a.choices[0].text.strip()[:2]
cut = client.completions.create(model=model, prompt="The lighthouse keeper", max_tokens=16, seed=11, temperature=0.8, stop=[stop_word])
check("stop ends the text before the stop string", stop_word not in cut.choices[0].text and a.choices[0].text.startswith(cut.choices[0].text), (cut.choices[0].text, stop_word))

pieces = {}
for chunk in client.completions.create(model=model, prompt="The lighthouse keeper", max_tokens=16, seed=11, temperature=0.8, stream=True):
    for c in chunk.choices:
        pieces[c.index] = pieces.get(c.index, "") + (c.text or "")
check("streamed completion equals the whole one", pieces.get(0) == a.choices[0].text, (pieces, a.choices[0].text))

chat = client.chat.completions.create(model=model, messages=[{"role": "system", "content": "You are a helpful writing assistant."}, {"role": "user", "content": "Suggest a title for a story about a lighthouse."}], max_tokens=24, seed=3)
check("chat answers as the assistant", chat.choices[0].message.role == "assistant" and chat.choices[0].message.content, chat)

streamed = ""
for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Suggest a title for a story about a lighthouse."}], max_tokens=24, seed=3, stream=True, stream_options={"include_usage": True}):
    for c in chunk.choices:
        streamed += c.delta.content or ""
    if chunk.usage:
        usage = chunk.usage
check("chat streams text and reports usage", streamed and usage.completion_tokens > 0, streamed)

lp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, logprobs=True, top_logprobs=2, temperature=0)
check("chat logprobs", len(lp.choices[0].logprobs.content) >= 1 and len(lp.choices[0].logprobs.content[0].top_logprobs) == 2, lp)

try:
    client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    check("unknown model is refused", False, "no error")
except openai.NotFoundError as e:
    check("unknown model is a 404 with a message", "not served" in str(e), e)
try:
    client.completions.create(model=model, prompt="x", max_tokens=2, n=0)
    check("n=0 is refused", False, "no error")
except openai.BadRequestError as e:
    check("n=0 is a 400 with a message", "n must be" in str(e), e)

print(f"all {checks} checks passed")
