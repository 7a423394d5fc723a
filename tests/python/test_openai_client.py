#!/usr/bin/env python3
"""The official `openai` client against `ponder serve` on SmolLM2-135M (fast, real).

Checks non-streaming and streaming answers with the strategy chosen both ways (model
prefix `sc-4:smollm2-135m` and `extra_body={"ponder": {...}}`), that `usage` is the sum
over all samples as the engine counted them, that progress events do not disturb the
client, and that bad requests raise the client's typed errors.

    python tests/python/test_openai_client.py --ponder target/release/ponder
    python tests/python/test_openai_client.py --url http://127.0.0.1:8080/v1

Prints one line per test and a closing `N passed, M failed` line; exits 1 on failure.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
import traceback

import openai

MODEL = "smollm2-135m"
QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def extra(obj):
    """Fields outside OpenAI's schema (the client keeps them as extras)."""
    return getattr(obj, "model_extra", None) or {}


def chosen_text(ponder):
    return next(c["text"] for c in ponder["candidates"] if c["index"] == ponder["chosen"])


def prompt_tokens_of_one(client):
    r = client.chat.completions.create(model=f"single:{MODEL}", messages=QUESTION, max_tokens=4, seed=1)
    return r.usage.prompt_tokens


@test
def non_streaming_strategy_by_model_prefix(client):
    r = client.chat.completions.create(
        model=f"sc-4:{MODEL}", messages=QUESTION, max_tokens=32, seed=7,
        extra_body={"ponder": {"return_candidates": True}},
    )
    p = extra(r)["ponder"]
    assert p["strategy"] == "sc", p
    assert len(p["candidates"]) == 4, p
    assert r.choices[0].message.content == chosen_text(p)
    assert r.choices[0].message.role == "assistant"
    # Usage is the sum over every sample, as the engine counted it.
    assert r.usage.completion_tokens == sum(c["n_tokens"] for c in p["candidates"]), (r.usage, p)
    assert r.usage.prompt_tokens == 4 * prompt_tokens_of_one(client), r.usage
    assert r.usage.prompt_tokens == p["usage"]["prompt_computed"] + p["usage"]["prompt_reused"]
    assert r.usage.prompt_tokens_details.cached_tokens == p["usage"]["prompt_reused"]
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@test
def non_streaming_strategy_by_extra_body(client):
    r = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=32, temperature=0.0,
        extra_body={"ponder": {"strategy": "adaptive-sc", "budget": 8, "return_candidates": True}},
    )
    p = extra(r)["ponder"]
    assert p["strategy"] == "adaptive-sc", p
    # Greedy samples agree: the Beta rule stops after the first round of 4.
    assert p["stopped_early"] is True and len(p["candidates"]) == 4, p
    assert r.usage.completion_tokens == p["usage"]["completion"]
    assert r.usage.completion_tokens >= sum(c["n_tokens"] for c in p["candidates"])
    assert r.choices[0].message.content == chosen_text(p)


def collect(stream):
    content, usage, finals, progress = [], None, [], []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if "ponder" in extra(chunk) and not chunk.choices:
            progress.append(extra(chunk)["ponder"])
        for c in chunk.choices:
            if c.delta.content:
                content.append(c.delta.content)
            if c.finish_reason:
                finals.append(extra(chunk).get("ponder"))
    return "".join(content), usage, finals, progress


@test
def streaming_strategy_by_model_prefix(client):
    stream = client.chat.completions.create(
        model=f"sc-3:{MODEL}", messages=QUESTION, max_tokens=24, seed=3, stream=True,
        stream_options={"include_usage": True},
        extra_body={"ponder": {"return_candidates": True}},
    )
    text, usage, finals, progress = collect(stream)
    assert len(finals) == 1 and finals[0]["strategy"] == "sc", finals
    p = finals[0]
    assert text == chosen_text(p), (text, p)
    assert usage is not None and usage.completion_tokens == sum(c["n_tokens"] for c in p["candidates"])
    assert progress == [], "progress travels as SSE comments by default, invisible to the client"


@test
def streaming_strategy_by_extra_body_with_progress_chunks(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=24, seed=5, stream=True,
        extra_body={"ponder": {"strategy": "sc", "budget": 3, "progress": "chunks", "return_candidates": True}},
    )
    text, usage, finals, progress = collect(stream)
    events = [e["event"] for e in progress]
    assert events.count("sample") == 3 and events[-1] == "decided", events
    assert progress[-2]["leader_votes"] >= 1 or progress[-2]["leader"] is None
    p = finals[0]
    assert text == chosen_text(p)
    assert usage.completion_tokens == sum(c["n_tokens"] for c in p["candidates"])


@test
def completions_endpoint(client):
    r = client.completions.create(
        model=f"sc-2:{MODEL}", prompt="Question: What is 2 + 2?\nAnswer:", max_tokens=8, stop=["\n"],
    )
    p = extra(r)["ponder"]
    assert p["strategy"] == "sc" and p["n_candidates"] == 2, p
    assert r.usage.completion_tokens == p["usage"]["completion"]
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, n=2,
                                  extra_body={"ponder": {"strategy": "single"}})
    assert len(r.choices) == 2


@test
def chat_logprobs_carry_token_texts(client):
    r = client.chat.completions.create(model=f"single:{MODEL}", messages=QUESTION, max_tokens=12, seed=5, logprobs=True)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens, (len(content), r.usage)
    assert all(t.logprob <= 0.0 for t in content)
    # The tokens' bytes spell the answer; each token's text is its bytes decoded.
    assert b"".join(bytes(t.bytes) for t in content).decode("utf-8", "replace") == r.choices[0].message.content
    assert all(t.token == bytes(t.bytes).decode("utf-8", "replace") for t in content)


@test
def models_list(client):
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids, ids


@test
def errors_are_typed(client):
    cases = [
        (dict(model=f"telepathy:{MODEL}"), openai.BadRequestError, "unknown_strategy"),
        (dict(model=f"sc-1000:{MODEL}"), openai.BadRequestError, "budget_too_large"),
        (dict(model="gpt-17"), openai.NotFoundError, "model_not_found"),
        (dict(model=MODEL, extra_body={"ponder": {"strategy": "sc", "budget": 8, "max_total_tokens": 10}}),
         openai.BadRequestError, "token_ceiling_exceeded"),
    ]
    for kwargs, exc, code in cases:
        try:
            client.chat.completions.create(messages=QUESTION, max_tokens=8, **kwargs)
        except exc as e:
            assert e.code == code, (kwargs, e.code, e)
        else:
            raise AssertionError(f"{kwargs} did not fail")
    try:
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=8)
    except openai.BadRequestError as e:
        assert e.param == "messages", e
    else:
        raise AssertionError("empty messages accepted")


def start_server(binary):
    env = dict(os.environ, PONDER_THREADS=os.environ.get("PONDER_THREADS", "1"))
    proc = subprocess.Popen(
        [binary, "serve", "--model", MODEL, "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True, env=env
    )
    found = {}

    def read():
        for line in proc.stderr:
            if "on http://" in line and "url" not in found:
                found["url"] = line.strip().split("on ", 1)[1]
            if line.startswith("ponder: error"):
                found["error"] = line.strip()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 300
    while "url" not in found and "error" not in found and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    if "url" not in found:
        proc.kill()
        sys.exit(f"ponder serve did not start: {found.get('error', 'no address printed')}")
    return proc, found["url"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ponder", help="the ponder binary: start `ponder serve` on a free port")
    ap.add_argument("--url", help="base URL of a running `ponder serve` (with /v1)")
    ap.add_argument("--api-key", default="none")
    args = ap.parse_args()
    proc = None
    if args.url:
        url = args.url
    elif args.ponder:
        proc, url = start_server(args.ponder)
    else:
        ap.error("give --ponder or --url")
    client = openai.OpenAI(base_url=url, api_key=args.api_key, timeout=300, max_retries=0)
    passed = failed = 0
    try:
        for fn in TESTS:
            t = time.time()
            try:
                fn(client)
                passed += 1
                print(f"ok   {fn.__name__} ({time.time() - t:.1f} s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {fn.__name__}\n{traceback.format_exc()}", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"openai-client: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
