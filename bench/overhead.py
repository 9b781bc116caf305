"""What the pipeline adds to model time: the same N prompts through a plain llama-cpp-python loop and through Beam.

Both sides send the same prompts, with the same grammar, sampling seeds and max tokens, to the embedded model
(SmolLM2-135M-Instruct); each side's time includes loading the model. The last line printed is
``pipeline_efficiency = loop_time / pipeline_time``.

    .venv/bin/python bench/overhead.py [--n 40] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import apache_beam as beam  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from pipelines.generate import build_pipeline  # noqa: E402
from pipelines.options import parse_args, to_config  # noqa: E402
from tests.support.helpers import read_table  # noqa: E402
from transforms.models.grammar import gbnf_for_schema  # noqa: E402
from transforms.models.llama_cpp import default_model_path  # noqa: E402
from transforms.render import render  # noqa: E402
from transforms.sampling import sample_attributes, symmetric_elements  # noqa: E402

CATEGORIES = ("monolingual-triplet", "bitext-retrieval")


def _argv(n: int, max_tokens: int, output: str) -> list:
    return [
        "--categories",
        ",".join(CATEGORIES),
        "--examples-per-symmetric-type",
        str(n // len(CATEGORIES)),
        "--max-tokens",
        str(max_tokens),
        "--max-parse-retries",
        "0",  # exactly one call per prompt, as in the loop
        "--output",
        output,
        "--overwrite",
    ]


def plain_loop(config) -> tuple[float, int, dict]:
    """The baseline: render the same prompts and call llama-cpp-python in a for loop."""
    from llama_cpp import Llama, LlamaGrammar

    started = time.perf_counter()
    llama = Llama(
        model_path=config.model.settings.model_path,
        n_ctx=config.model.settings.n_ctx,
        n_threads=config.model.settings.n_threads,
        n_threads_batch=config.model.settings.n_threads,
        n_batch=512,
        seed=0,
        verbose=False,
    )
    grammars = {}
    tokens, texts = 0, {}
    for category in CATEGORIES:
        for element in symmetric_elements(category, config.examples_per_symmetric_type, config.seed):
            request = render(sample_attributes(element, config.sampling), config.seed)
            if request.schema_json not in grammars:
                grammars[request.schema_json] = LlamaGrammar.from_string(
                    gbnf_for_schema(json.loads(request.schema_json)), verbose=False
                )
            llama.reset()
            response = llama.create_chat_completion(
                messages=[{"role": "user", "content": request.prompt}],
                grammar=grammars[request.schema_json],
                max_tokens=config.model.settings.max_tokens,
                temperature=config.model.settings.temperature,
                top_p=config.model.settings.top_p,
                seed=request.sampling_seed,
            )
            tokens += response["usage"]["completion_tokens"]
            texts[element.element_id] = response["choices"][0]["message"]["content"]
    return time.perf_counter() - started, tokens, texts


def full_pipeline(argv: list) -> tuple[float, int, dict]:
    """The whole generation graph on the DirectRunner, Avro output included."""
    args, beam_args = parse_args(argv)
    config = to_config(args)
    started = time.perf_counter()
    p = beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(p, config)
    result = p.run()
    result.wait_until_finish()
    elapsed = time.perf_counter() - started
    tokens = sum(
        (m.committed or 0)
        for m in result.metrics().query(MetricsFilter().with_name("tokens/replies_completion"))["counters"]
    )
    tables = [*CATEGORIES, *(f"rejected/{c}" for c in CATEGORIES)]  # rows the quality stage moved count too
    rows = [r for t in tables for r in read_table(config.output, t)]
    return elapsed, tokens, {r["example_id"]: r for r in rows}


def _same(text: str, row) -> bool:
    """Whether the loop's reply and the pipeline's row hold the same values."""
    try:
        value = json.loads(text)
    except ValueError:
        return row is None  # a reply cut at max tokens is dead-lettered by the pipeline
    return row is not None and all(row[k] == v.strip() for k, v in value.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="prompts (split over two task types)")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        argv = _argv(args.n, args.max_tokens, tmp)
        config = to_config(parse_args(argv)[0])
        print(f"model: {os.path.basename(default_model_path())}, N = {args.n}, max tokens = {args.max_tokens}")
        loop_time, loop_tokens, texts = plain_loop(config)
        print(
            f"plain loop:    {loop_time:7.1f} s, {loop_tokens} completion tokens, "
            f"{loop_tokens / loop_time:.1f} tokens/s"
        )
        pipe_time, pipe_tokens, rows = full_pipeline(argv)
        print(
            f"full pipeline: {pipe_time:7.1f} s, {pipe_tokens} completion tokens, "
            f"{pipe_tokens / pipe_time:.1f} tokens/s"
        )
        same = sum(_same(text, rows.get(i)) for i, text in texts.items())
        print(f"prompts answered identically by both: {same} of {len(texts)} (rows written: {len(rows)})")
    print(f"pipeline_efficiency = loop_time / pipeline_time = {loop_time / pipe_time:.3f}")


if __name__ == "__main__":
    main()
