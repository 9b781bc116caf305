"""What users get from the pipeline against free decoding: the same N prompts through a plain llama-cpp-python loop
without a grammar, and through the whole generation job on the DirectRunner with its defaults.

The baseline is free (unconstrained) decoding: ``create_chat_completion`` one prompt at a time with no grammar, the
same sampling seeds, max tokens and threads (all cores, the pipeline's default). The pipeline side runs the job with
its defaults (fast constrained decoding, fixed seeded batches), one attempt per prompt. Each side's time includes
loading the model. Both sides report completion tokens per second, valid rows per second and completion tokens per
valid row: for the pipeline a valid row is a row written to its category table (parsed, validated and through the
quality checks); for the loop, a reply that parses as a JSON object with the schema's keys, all non-empty strings.
The last line printed is ``valid_rows_per_second_over_free = pipeline valid rows/s / loop valid rows/s``.

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
from transforms.models.llama_cpp import default_model_path, default_threads  # noqa: E402
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


def _schema_valid(text: str, schema_json: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    keys = json.loads(schema_json)["required"]
    return (
        isinstance(value, dict)
        and list(value) == keys
        and all(isinstance(v, str) and v.strip() for v in value.values())
    )


def plain_loop(config) -> tuple[float, int, int]:
    """The baseline: render the same prompts and call llama-cpp-python in a for loop, without a grammar."""
    from llama_cpp import Llama

    started = time.perf_counter()
    threads = config.model.settings.n_threads or default_threads(1)
    llama = Llama(
        model_path=config.model.settings.model_path,
        n_ctx=config.model.settings.n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        seed=0,
        verbose=False,
    )
    tokens = valid = 0
    for category in CATEGORIES:
        for element in symmetric_elements(category, config.examples_per_symmetric_type, config.seed):
            request = render(sample_attributes(element, config.sampling), config.seed)
            llama.reset()
            response = llama.create_chat_completion(
                messages=[{"role": "user", "content": request.prompt}],
                max_tokens=config.model.settings.max_tokens,
                temperature=config.model.settings.temperature,
                top_p=config.model.settings.top_p,
                seed=request.sampling_seed,
            )
            tokens += response["usage"]["completion_tokens"]
            valid += _schema_valid(response["choices"][0]["message"]["content"] or "", request.schema_json)
    llama.close()
    return time.perf_counter() - started, tokens, valid


def full_pipeline(argv: list) -> tuple[float, int, int, int]:
    """The whole generation graph on the DirectRunner, Avro output included: time, tokens, valid rows, all rows."""
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
    valid = sum(len(read_table(config.output, t)) for t in CATEGORIES)
    rejected = sum(len(read_table(config.output, f"rejected/{c}")) for c in CATEGORIES)
    return elapsed, tokens, valid, valid + rejected


def _line(name: str, seconds: float, tokens: int, valid: int) -> str:
    per_row = f"{tokens / valid:.0f}" if valid else "-"
    return (
        f"{name:<11}{seconds:7.1f} s, {tokens:5d} completion tokens, {tokens / seconds:5.1f} tokens/s, "
        f"{valid:3d} valid rows, {valid / seconds:.3f} valid rows/s, {per_row} tokens per valid row"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="prompts (split over two task types)")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        argv = _argv(args.n, args.max_tokens, tmp)
        config = to_config(parse_args(argv)[0])
        print(
            f"model: {os.path.basename(default_model_path())}, N = {args.n}, max tokens = {args.max_tokens}, "
            f"threads = {config.model.settings.n_threads or default_threads(1)}, pipeline: --llama-parallel-sequences "
            f"{config.model.settings.parallel_sequences}, --batch-size {config.model.settings.batch_size}"
        )
        loop_time, loop_tokens, loop_valid = plain_loop(config)
        print(_line("free loop:", loop_time, loop_tokens, loop_valid))
        pipe_time, pipe_tokens, pipe_valid, pipe_rows = full_pipeline(argv)
        print(_line("pipeline:", pipe_time, pipe_tokens, pipe_valid) + f" ({pipe_rows} rows before quality checks)")
    loop_speed, pipe_speed = loop_tokens / loop_time, pipe_tokens / pipe_time
    print(f"tokens_per_second_over_free = {pipe_speed:.1f} / {loop_speed:.1f} = {pipe_speed / loop_speed:.3f}")
    loop_rate, pipe_rate = loop_valid / loop_time, pipe_valid / pipe_time
    ratio = f"{pipe_rate / loop_rate:.2f}" if loop_valid else "inf (no free reply was a valid row)"
    print(f"valid_rows_per_second_over_free = {pipe_rate:.3f} / {loop_rate:.3f} = {ratio}")


if __name__ == "__main__":
    main()
