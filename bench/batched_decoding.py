"""Batched decoding of the embedded model: the same N prompts one at a time and K at a time in one llama.cpp context.

The prompts are the ones the pipeline sends for monolingual-triplet and bitext-retrieval (same rendering, grammar,
sampling seeds and max tokens as bench/overhead.py). Sequential is today's path, ``LoadedLlama.complete``: one
``create_chat_completion`` per prompt from an empty KV cache. Batched is ``BatchedDecoder``: K sequences in one
context, one token of each generating sequence per ``llama_decode`` call, a freed slot taken by the next prompt.
Model loading and context creation are not timed; both sides decode the same prompts in the same process.
The last line printed is ``batched_speedup = <batched examples/s at the best K> / <sequential examples/s>``.

    .venv/bin/python bench/batched_decoding.py [--n 16] [--max-tokens 128] [--k 1,2,4,8] [--n-threads T]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipelines.options import parse_args, to_config  # noqa: E402
from transforms.models.grammar import gbnf_for_schema  # noqa: E402
from transforms.models.llama_cpp import LlamaCppConfig, LoadedLlama, default_model_path  # noqa: E402
from transforms.models.llama_cpp_batched import BatchedDecoder, ChatRequest  # noqa: E402
from transforms.render import render  # noqa: E402
from transforms.sampling import sample_attributes, symmetric_elements  # noqa: E402

CATEGORIES = ("monolingual-triplet", "bitext-retrieval")


def prompts(n: int, max_tokens: int) -> tuple:
    """The generation config and the first N prompt requests of the two symmetric task types."""
    argv = ["--categories", ",".join(CATEGORIES), "--examples-per-symmetric-type", str(-(-n // len(CATEGORIES)))]
    config = to_config(parse_args([*argv, "--max-tokens", str(max_tokens)])[0])
    requests = [
        render(sample_attributes(element, config.sampling), config.seed)
        for category in CATEGORIES
        for element in symmetric_elements(category, config.examples_per_symmetric_type, config.seed)
    ]
    return config, requests[:n]


def valid(completion) -> bool:
    """A reply that finished by stop parses as JSON (one cut at max tokens is not expected to)."""
    if completion.finish_reason != "stop":
        return True
    try:
        json.loads(completion.text)
    except ValueError:
        return False
    return True


def _batched(model, k: int, chat: list, config, sampling_threads) -> tuple:
    decoder = BatchedDecoder(model.llama, k, config.model.settings.n_ctx, sampling_threads=sampling_threads)
    try:
        started = time.perf_counter()
        completions = decoder.generate(
            chat, config.model.settings.max_tokens, config.model.settings.temperature, config.model.settings.top_p
        )
        return time.perf_counter() - started, completions
    finally:
        decoder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="prompts (split over two task types)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--k", default="1,2,4,8", help="comma-separated sequences per context to measure")
    parser.add_argument(
        "--n-threads", type=int, default=None, help="threads of both sides, as --n-threads (default: the pipeline's)"
    )
    parser.add_argument(
        "--sampling-threads",
        type=int,
        default=None,
        help="threads sampling the K sequences after each decode (default: as many as cores, at most K)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every mode, interleaved; times are the median (default: 1)"
    )
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    config, requests = prompts(args.n, args.max_tokens)
    llama_config = LlamaCppConfig(
        model_path=default_model_path(),
        n_ctx=config.model.settings.n_ctx,
        n_threads=args.n_threads,
        max_tokens=config.model.settings.max_tokens,
        temperature=config.model.settings.temperature,
        top_p=config.model.settings.top_p,
    )
    model = LoadedLlama(llama_config)
    params = model.llama.context_params
    print(
        f"model: {llama_config.model_name}, N = {len(requests)}, max tokens = {args.max_tokens}, n_ctx per sequence = "
        f"{config.model.settings.n_ctx}, threads: {params.n_threads} per single-token decode, "
        f"{params.n_threads_batch} per batch, "
        f"rounds: {args.repeat}"
    )
    chat = [ChatRequest(r.prompt, gbnf_for_schema(json.loads(r.schema_json)), r.sampling_seed) for r in requests]

    times: dict = {}
    replies: dict = {}
    try:
        for _ in range(args.repeat):  # interleaved, so a slow spell of a shared machine does not hit one mode only
            started = time.perf_counter()
            replies["sequential"] = [model.complete(r) for r in requests]
            times.setdefault("sequential", []).append(time.perf_counter() - started)
            for k in ks:
                elapsed, replies[k] = _batched(model, k, chat, config, args.sampling_threads)
                times.setdefault(k, []).append(elapsed)
    finally:
        model.close()

    sequential = replies["sequential"]
    print(
        f"{'mode':<11}{'K':>3}{'seconds':>9}{'range':>13}{'examples/s':>12}{'tokens':>8}{'tokens/s':>10}"
        f"{'stop':>6}{'length':>8}{'error':>7}{'invalid':>9}{'= seq':>7}"
    )
    rates = {}
    invalid_total = 0
    for key in ["sequential", *ks]:
        completions = replies[key]
        seconds = statistics.median(times[key])
        spread = f"{min(times[key]):.1f}-{max(times[key]):.1f}"
        tokens = sum(c.completion_tokens for c in completions)
        count = {r: sum(c.finish_reason == r for c in completions) for r in ("stop", "length", "error")}
        invalid = sum(not valid(c) for c in completions)
        invalid_total += invalid if key != "sequential" else 0
        same = sum(
            b.text == s.text and b.finish_reason == s.finish_reason
            for b, s in zip(completions, sequential, strict=True)
        )
        rates[key] = len(completions) / seconds
        mode, k = ("sequential", 1) if key == "sequential" else ("batched", key)
        print(
            f"{mode:<11}{k:>3}{seconds:>9.1f}{spread:>13}{rates[key]:>12.3f}{tokens:>8}{tokens / seconds:>10.1f}"
            f"{count['stop']:>6}{count['length']:>8}{count['error']:>7}{invalid:>9}{same:>7}"
        )
    print("'= seq': replies identical (text and finish reason) to the sequential reply with the same seed")
    print(f"batched replies finished by stop that are not valid JSON: {invalid_total}")
    best = max(ks, key=lambda k: rates[k])
    seq_rate = rates["sequential"]
    print(f"batched_speedup = {rates[best]:.3f} / {seq_rate:.3f} = {rates[best] / seq_rate:.2f} (K={best})")


if __name__ == "__main__":
    main()
