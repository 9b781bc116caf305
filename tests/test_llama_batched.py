"""--llama-parallel-sequences: a RunInference batch decoded several sequences per llama.cpp evaluation (real model)."""

import json

import pytest

from pipelines.options import ConfigError, parse_args, to_config
from transforms.models import make_handler
from transforms.models.llama_cpp import LlamaCppConfig, LlamaCppHandler, default_model_path
from transforms.render import render
from transforms.sampling import SamplingSpec, sample_attributes, symmetric_elements

MAX_TOKENS = 80
PARALLEL = 3


def _requests() -> list:
    spec = SamplingSpec(seed=7)
    return [
        render(sample_attributes(e, spec), run_seed=7)
        for category, n in (("monolingual-triplet", 3), ("bitext-retrieval", 2))
        for e in symmetric_elements(category, n, 7)
    ]


@pytest.fixture(scope="module")
def handler():
    # A small context per sequence, so one prompt can be made too long for it cheaply.
    return LlamaCppHandler(
        LlamaCppConfig(default_model_path(), n_ctx=512, max_tokens=MAX_TOKENS, parallel_sequences=PARALLEL)
    )


@pytest.mark.model
def test_a_batch_gives_one_completion_per_prompt_in_order_and_bad_prompts_fail_alone(handler):
    good = _requests()  # 5 prompts for 3 sequence slots: slots are reused as sequences finish
    too_long = good[0]._replace(prompt="lorem ipsum " * 400)
    bad_schema = good[1]._replace(schema_json='{"type": "number"}')
    batch = [good[0], good[1], too_long, good[2], bad_schema, good[3], good[4]]
    model = handler.load_model()
    results = list(handler.run_inference(batch, model))

    assert [r.example for r in results] == batch
    by_request = {id(r.example): r.inference for r in results}
    assert by_request[id(too_long)].finish_reason == "error"
    assert "exceed context window" in by_request[id(too_long)].error
    assert by_request[id(bad_schema)].finish_reason == "error"
    assert "unsupported schema type" in by_request[id(bad_schema)].error
    for request in good:
        completion = by_request[id(request)]
        assert completion.error is None, completion.error
        assert completion.finish_reason in ("stop", "length")
        assert 0 < completion.completion_tokens <= MAX_TOKENS
        if completion.finish_reason == "length":
            assert completion.completion_tokens == MAX_TOKENS
        else:  # finished by the grammar: schema-shaped JSON
            value = json.loads(completion.text)
            assert list(value) == list(json.loads(request.schema_json)["required"])

    again = list(handler.run_inference(batch, model))  # the same batch decodes to the same replies
    assert [r.inference for r in again] == [r.inference for r in results]


@pytest.mark.model
def test_one_sequence_at_a_time_reproduces_create_chat_completion(handler):
    """The decoder formats, tokenizes and samples exactly as the one-at-a-time path: with one slot, same replies."""
    from transforms.models.llama_cpp_batched import BatchedDecoder, ChatRequest

    model = handler.load_model()
    requests = _requests()[:2]
    sequential = [model.complete(r) for r in requests]
    decoder = BatchedDecoder(model.llama, 1, model.config.n_ctx)
    try:
        batched = decoder.generate(
            [ChatRequest(r.prompt, model.gbnf(r.schema_json), r.sampling_seed) for r in requests],
            MAX_TOKENS,
            model.config.temperature,
            model.config.top_p,
            model_name=model.config.model_name,
        )
    finally:
        decoder.close()
    assert batched == sequential


def test_batches_hold_at_least_the_parallel_sequences():
    config = LlamaCppConfig("unused.gguf", parallel_sequences=8)
    assert LlamaCppHandler(config, max_batch_size=4).batch_elements_kwargs() == {
        "min_batch_size": 8,
        "max_batch_size": 8,
    }
    assert LlamaCppHandler(config, max_batch_size=32).batch_elements_kwargs()["max_batch_size"] == 32
    default = LlamaCppHandler(LlamaCppConfig("unused.gguf"), max_batch_size=4).batch_elements_kwargs()
    assert default == {"min_batch_size": 1, "max_batch_size": 4}


def test_flag_reaches_the_handler_and_defaults_to_one():
    assert to_config(parse_args([])[0]).model.settings.parallel_sequences == 1
    config = to_config(parse_args(["--llama-parallel-sequences", "4"])[0])
    assert config.model.settings.parallel_sequences == 4
    handler = make_handler(config)  # builds the handler; the model is loaded on the worker only
    assert handler.batch_elements_kwargs()["min_batch_size"] == 4


@pytest.mark.parametrize(
    "argv,must_say",
    [
        (["--llama-parallel-sequences", "0"], "--llama-parallel-sequences must be at least 1, got 0"),
        (["--llama-parallel-sequences", "-2"], "--llama-parallel-sequences must be at least 1"),
        (["--llama-parallel-sequences", "1000"], "--llama-parallel-sequences must be at most 256"),
        (
            ["--llama-parallel-sequences", "2", "--model", "openai:m", "--api-base", "http://127.0.0.1:1/v1"],
            "--llama-parallel-sequences applies to --model embedded only",
        ),
    ],
)
def test_bad_values_name_the_flag(argv, must_say):
    with pytest.raises(ConfigError) as raised:
        to_config(parse_args(argv)[0])
    assert must_say in str(raised.value)
