"""Constrained against free decoding of the embedded model: the same N prompts, threads and seeds, with and without
the grammar.

The prompts are the ones the pipeline sends for monolingual-triplet and bitext-retrieval (as bench/overhead.py).
Every mode decodes them one at a time in the same process, through the pipeline's decoder (``LoadedLlama``, one
sequence slot):

- ``free``: no grammar (the unconstrained sampling chain only);
- ``grammar-first``: the grammar applied to the whole vocabulary at every token, then the chain (what
  ``create_chat_completion`` does, and what the pipeline did before the fast path);
- ``constrained``: the pipeline's sampler: the chain first, the grammar checked on the sampled token, and applied
  to the vocabulary only when it rejects that token.

Model loading is not timed. Modes are interleaved over ``--repeat`` rounds and times are medians. A constrained reply
that finished by stop must parse as JSON with the schema's keys (counted as invalid otherwise). The last line printed
is ``constrained_over_free = <constrained tokens/s> / <free tokens/s>``.

    .venv/bin/python bench/constrained_decoding.py [--n 8] [--max-tokens 128] [--n-threads T] [--repeat 1]
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

from bench.batched_decoding import prompts  # noqa: E402
from transforms.models.llama_cpp import LlamaCppConfig, LoadedLlama, default_model_path  # noqa: E402

MODES = ("free", "grammar-first", "constrained")


def schema_valid(completion, request) -> bool:
    """A reply finished by stop is a JSON object with the schema's keys, each a string (a cut reply is not judged)."""
    if completion.finish_reason != "stop":
        return completion.finish_reason == "length"
    try:
        value = json.loads(completion.text)
    except ValueError:
        return False
    required = json.loads(request.schema_json).get("required", [])
    return isinstance(value, dict) and list(value) == required and all(isinstance(v, str) for v in value.values())


def _decode(model: LoadedLlama, requests: list, mode: str) -> tuple:
    decoder = model.decoder()
    decoder.grammar_first = mode == "grammar-first"
    fallbacks, sampled = decoder.fallbacks, decoder.sampled
    started = time.perf_counter()
    completions = [model.complete_many([r], constrained=mode != "free")[0] for r in requests]
    elapsed = time.perf_counter() - started
    decoder.grammar_first = False
    return elapsed, completions, decoder.fallbacks - fallbacks, decoder.sampled - sampled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="prompts (split over two task types)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-threads", type=int, default=None, help="threads, as --n-threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds of every mode (default: 1)")
    args = parser.parse_args()
    config, requests = prompts(args.n, args.max_tokens)
    model = LoadedLlama(
        LlamaCppConfig(
            model_path=default_model_path(),
            n_ctx=config.model.settings.n_ctx,
            n_threads=args.n_threads,
            max_tokens=config.model.settings.max_tokens,
            temperature=config.model.settings.temperature,
            top_p=config.model.settings.top_p,
            parallel_sequences=1,
        )
    )
    print(
        f"model: {model.config.model_name}, N = {len(requests)}, max tokens = {args.max_tokens}, "
        f"threads = {model.n_threads}, rounds = {args.repeat}, one prompt at a time"
    )
    times: dict = {m: [] for m in MODES}
    replies, fallbacks, sampled = {}, {}, {}
    try:
        model.complete(requests[0])  # warm up (first-call allocations), not timed
        for _ in range(args.repeat):
            for mode in MODES:
                elapsed, replies[mode], fallbacks[mode], sampled[mode] = _decode(model, requests, mode)
                times[mode].append(elapsed)
    finally:
        model.close()
    print(
        f"{'mode':<15}{'seconds':>9}{'tokens':>8}{'tokens/s':>10}{'stop':>6}{'length':>8}{'invalid':>9}{'redrawn':>9}"
    )
    rate = {}
    for mode in MODES:
        completions = replies[mode]
        seconds = statistics.median(times[mode])
        tokens = sum(c.completion_tokens for c in completions)
        rate[mode] = tokens / seconds
        stop = sum(c.finish_reason == "stop" for c in completions)
        length = sum(c.finish_reason == "length" for c in completions)
        invalid = (
            "-" if mode == "free" else sum(not schema_valid(c, r) for c, r in zip(completions, requests, strict=True))
        )
        redrawn = f"{fallbacks[mode] / max(1, sampled[mode]):.1%}" if mode == "constrained" else "-"
        print(f"{mode:<15}{seconds:>9.1f}{tokens:>8}{rate[mode]:>10.1f}{stop:>6}{length:>8}{invalid:>9}{redrawn:>9}")
    print("redrawn: share of tokens the grammar rejected, drawn again under the grammar")
    print(
        f"grammar_first_over_free = {rate['grammar-first']:.1f} / {rate['free']:.1f} = "
        f"{rate['grammar-first'] / rate['free']:.2f}"
    )
    print(
        f"constrained_over_free = {rate['constrained']:.1f} / {rate['free']:.1f} = "
        f"{rate['constrained'] / rate['free']:.2f}"
    )


if __name__ == "__main__":
    main()
