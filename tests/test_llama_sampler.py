"""The embedded decoder's sampler: the grammar checked on the sampled token, redrawn under the grammar when it
rejects it (real model)."""

import json

import pytest

from transforms.models.llama_cpp import LlamaCppConfig, LoadedLlama, default_model_path
from transforms.models.llama_cpp_batched import BatchedDecoder, ChatRequest
from transforms.render import render
from transforms.sampling import SamplingSpec, sample_attributes, symmetric_elements

pytestmark = pytest.mark.model

MAX_TOKENS = 60
# Accepts any text: every unconstrained draw passes, so the constrained reply must be the free reply itself.
ANYTHING = r"root ::= [^\x00]*"
# Three unlikely letters: the model's own draws are rejected, so every token comes from the redraw under the grammar.
UNLIKELY = 'root ::= "zq" "xj" "zq"'


@pytest.fixture(scope="module")
def model():
    loaded = LoadedLlama(LlamaCppConfig(default_model_path(), n_ctx=1024, max_tokens=MAX_TOKENS))
    yield loaded
    loaded.close()


def _requests(n: int = 3) -> list:
    spec = SamplingSpec(seed=11)
    return [render(sample_attributes(e, spec), run_seed=11) for e in symmetric_elements("monolingual-triplet", n, 11)]


def _generate(model, chats: list, parallel: int = 1) -> tuple:
    decoder = BatchedDecoder(model.llama, parallel, 1024)
    try:
        completions = decoder.generate(chats, MAX_TOKENS, 1.0, 1.0)
        return completions, decoder.fallbacks, decoder.sampled
    finally:
        decoder.close()


def test_replies_finished_by_the_grammar_are_schema_valid_json(model):
    requests = _requests(3)
    completions = model.complete_many(requests)
    for request, completion in zip(requests, completions, strict=True):
        assert completion.error is None, completion.error
        assert completion.finish_reason in ("stop", "length")
        if completion.finish_reason == "stop":
            value = json.loads(completion.text)
            assert list(value) == json.loads(request.schema_json)["required"]
            assert all(isinstance(v, str) for v in value.values())
        else:  # cut at the budget: still a prefix the grammar accepted, i.e. the start of the object
            assert completion.text.lstrip().startswith('{"')


def test_the_redraw_fires_when_the_unconstrained_token_is_rejected(model):
    prompt = _requests(1)[0].prompt
    completions, fallbacks, sampled = _generate(model, [ChatRequest(prompt, UNLIKELY, seed=5)])
    (completion,) = completions
    assert completion.text == "zqxjzq" and completion.finish_reason == "stop"
    assert fallbacks > 0 and sampled >= completion.completion_tokens


def test_a_grammar_that_rejects_nothing_gives_the_free_reply_with_no_redraw(model):
    prompt = _requests(1)[0].prompt
    free, _, _ = _generate(model, [ChatRequest(prompt, None, seed=9)])
    constrained, fallbacks, sampled = _generate(model, [ChatRequest(prompt, ANYTHING, seed=9)])
    assert sampled > 0 and fallbacks == 0
    assert constrained == free


def test_replies_are_reproducible_per_seed_and_honour_each_request_cap(model):
    prompt = _requests(1)[0].prompt
    grammar = model.gbnf(_requests(1)[0].schema_json)
    chats = [ChatRequest(prompt, grammar, seed=1), ChatRequest(prompt, grammar, seed=2, max_tokens=7)]
    first, _, _ = _generate(model, chats)
    again, _, _ = _generate(model, chats)
    assert first == again
    assert first[1].completion_tokens <= 7
    if first[1].completion_tokens == 7:
        assert first[1].finish_reason == "length"
    other_seed, _, _ = _generate(model, [ChatRequest(prompt, grammar, seed=3)])
    assert other_seed[0].text != first[0].text


def test_the_slow_order_reproduces_create_chat_completion(model):
    """grammar_first (the grammar over the whole vocabulary at every token) is llama-cpp-python's own order: the
    decoder formats, tokenizes and samples exactly as create_chat_completion does."""
    from llama_cpp import LlamaGrammar

    request = _requests(1)[0]
    grammar = model.gbnf(request.schema_json)
    decoder = BatchedDecoder(model.llama, 1, 1024, grammar_first=True)
    try:
        (ours,) = decoder.generate([ChatRequest(request.prompt, grammar, request.sampling_seed)], MAX_TOKENS, 1.0, 1.0)
    finally:
        decoder.close()
    llama = type(model.llama)(
        model_path=model.config.model_path, n_ctx=1024, n_threads=model.n_threads, seed=0, verbose=False
    )
    try:
        reply = llama.create_chat_completion(
            messages=[{"role": "user", "content": request.prompt}],
            grammar=LlamaGrammar.from_string(grammar, verbose=False),
            max_tokens=MAX_TOKENS,
            temperature=1.0,
            top_p=1.0,
            seed=request.sampling_seed,
        )
    finally:
        llama.close()
    assert ours.text == reply["choices"][0]["message"]["content"]
    assert ours.completion_tokens == reply["usage"]["completion_tokens"]
