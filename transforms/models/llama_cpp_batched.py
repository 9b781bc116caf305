"""Grammar-constrained chat completions decoded in a llama.cpp context of its own, several sequences at a time.

``BatchedDecoder`` gives every prompt its own sequence id in a context made with ``n_seq_max`` sequences, and each
``llama_decode`` call evaluates one token of every sequence that is generating (plus prompt tokens of sequences
that are starting), so the model weights are read once per step for all of them. Each sequence has its own
``ConstrainedSampler`` (``llama_sampler``): the same top-k / typical / top-p / min-p / temperature / seeded draw
chain llama-cpp-python's ``create_chat_completion`` builds, with the grammar checked on the sampled token and
applied to the vocabulary only when that token is rejected (its repetition-penalty sampler is left out, which
changes nothing at the neutral penalties our calls use, and other penalties are refused). A sequence stops on its
own at an end-of-generation token, a stop string of the chat format, or its token budget, and its slot is then
given to the next waiting prompt. After each decode the sequences are sampled on a few threads, each on its own
copy of its logits.

Prompts are formatted and tokenized by llama-cpp-python's own chat handler of the loaded model (the handler runs
against a stand-in that records the ``create_completion`` call instead of decoding), so a prompt's tokens and its
sampling settings are the ones ``create_chat_completion`` would use. A reply depends on its prompt, its seed and
which prompts share its ``generate`` call: the logits of a sequence evaluated in a batch differ in the last bits
from the logits of the same sequence evaluated alone, and a sampled token can flip when two candidates are that
close. The same requests in the same order give the same replies.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from transforms.elements import Completion
from transforms.models.llama_sampler import ConstrainedSampler, SamplingSettings

__all__ = ["BatchedDecoder", "ChatRequest"]


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """One user message to complete: its text, the GBNF grammar of the reply (None: unconstrained), the sampling
    seed, and its completion-token cap (0: the ``generate`` call's ``max_tokens``)."""

    prompt: str
    grammar: str | None
    seed: int
    max_tokens: int = 0


class _Captured(Exception):
    def __init__(self, kwargs: dict):
        super().__init__("create_completion captured")
        self.kwargs = kwargs


class _RecordingLlama:
    """Stands in for a Llama inside its chat handler: tokenizing goes to the real model, and the handler's
    ``create_completion`` call is recorded (prompt tokens, stop strings, sampling settings) instead of run."""

    def __init__(self, llama):
        self._llama = llama

    def __getattr__(self, name: str):
        return getattr(self._llama, name)

    def create_completion(self, **kwargs):
        raise _Captured(kwargs)


@dataclasses.dataclass
class _Sequence:
    index: int  # position in the caller's list
    tokens: list  # prompt tokens
    max_tokens: int
    stop: list  # stop strings, as bytes
    settings: SamplingSettings
    grammar: str | None
    slot: int = -1
    fed: int = 0  # prompt tokens already sent to llama_decode
    sampler: Any = None
    output_index: int = -1  # index of this sequence's logits in the last decode, -1 if none
    next_token: int | None = None
    generated: list = dataclasses.field(default_factory=list)
    text: bytes = b""


class BatchedDecoder:
    """A second llama.cpp context on an already loaded ``Llama``, decoding up to ``n_parallel`` sequences at once.

    Every sequence gets ``n_ctx_per_sequence`` positions of its own (the KV cache is not unified), so a prompt fits
    or is refused exactly as it would be by a ``Llama`` with that ``n_ctx``. Not thread-safe; callers serialize.
    """

    def __init__(
        self,
        llama,
        n_parallel: int,
        n_ctx_per_sequence: int,
        n_batch: int = 512,
        sampling_threads: int | None = None,
        grammar_first: bool = False,
    ):
        import llama_cpp

        if n_parallel < 1:
            raise ValueError(f"n_parallel must be at least 1, got {n_parallel}")
        self._lib = llama_cpp
        self._llama = llama
        self.n_parallel = n_parallel
        self.grammar_first = grammar_first  # the slow order (grammar over the vocabulary at every token), to compare
        params = type(llama.context_params).from_buffer_copy(llama.context_params)  # same threads, types, rope
        params.n_seq_max = n_parallel
        params.n_ctx = n_parallel * n_ctx_per_sequence
        params.kv_unified = False
        params.n_batch = max(n_batch, n_parallel)
        params.n_ubatch = min(params.n_batch, max(llama.context_params.n_ubatch, n_parallel))
        self._n_batch = params.n_batch
        self._ctx = llama_cpp.llama_init_from_model(llama.model, params)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {n_parallel} sequences")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_ctx_per_sequence = int(llama_cpp.llama_n_ctx_seq(self._ctx))
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._n_vocab = llama.n_vocab()
        self._piece = ctypes.create_string_buffer(256)
        # Sampling (the grammar checks every token of the vocabulary) costs about as much as a decode step for this
        # model, and each sequence's chain is independent, so the chains run on threads; ctypes releases the GIL.
        self._threads = max(1, min(n_parallel, sampling_threads or os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="llama-sample") if self._threads > 1 else None
        self.fallbacks = 0  # tokens the grammar rejected and that were drawn again under it, over all calls
        self.sampled = 0  # tokens sampled, over all calls

    def close(self) -> None:
        """Free the context and the batch (before the model they belong to is freed)."""
        if self._ctx is not None:
            if self._pool is not None:
                self._pool.shutdown()
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None

    # -- preparing a prompt -------------------------------------------------------------------------------------

    def _prepare(self, index: int, request: ChatRequest, max_tokens: int, temperature: float, top_p: float):
        """The prompt tokens and sampling settings the model's chat handler would use, as a _Sequence."""
        from llama_cpp import Llama

        if request.max_tokens > 0:
            max_tokens = min(request.max_tokens, max_tokens) if max_tokens > 0 else request.max_tokens
        try:
            Llama.create_chat_completion(
                _RecordingLlama(self._llama),
                messages=[{"role": "user", "content": request.prompt}],
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=request.seed,
            )
        except _Captured as captured:
            call = captured.kwargs
        else:  # pragma: no cover - a handler that never calls create_completion
            raise RuntimeError("the chat handler of this model did not call create_completion")
        unsupported = [
            name
            for name, neutral in (
                ("repeat_penalty", 1.0),
                ("frequency_penalty", 0.0),
                ("presence_penalty", 0.0),
                ("mirostat_mode", 0),
                ("logits_processor", None),
                ("logit_bias", None),
            )
            if call.get(name, neutral) != neutral
        ]
        if unsupported:
            raise NotImplementedError(f"batched decoding does not support {', '.join(unsupported)} of this chat format")
        tokens = list(call["prompt"])
        if not tokens:
            raise ValueError("the chat format produced an empty prompt")
        n_ctx = self.n_ctx_per_sequence
        if len(tokens) >= n_ctx:
            raise ValueError(f"Requested tokens ({len(tokens)}) exceed context window of {n_ctx}")
        budget = call.get("max_tokens")
        if budget is None or budget <= 0 or budget + len(tokens) >= n_ctx:
            budget = n_ctx - len(tokens)  # as Llama._create_completion clamps it
        stop = call.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        return _Sequence(
            index=index,
            tokens=tokens,
            max_tokens=budget,
            stop=[s.encode("utf-8") for s in stop if s],
            settings=SamplingSettings.from_call(call, self._llama._seed),
            grammar=request.grammar,
        )

    def _sampler(self, seq: _Sequence) -> ConstrainedSampler:
        return ConstrainedSampler(
            self._lib, self._vocab, self._n_vocab, seq.grammar, seq.settings, grammar_first=self.grammar_first
        )

    # -- decoding -----------------------------------------------------------------------------------------------

    def _add(self, n: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch = self._batch
        batch.token[n] = token
        batch.pos[n] = pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = seq_id
        batch.logits[n] = 1 if logits else 0

    def _release(self, seq: _Sequence) -> None:
        if seq.sampler is not None:
            self.fallbacks += seq.sampler.fallbacks
            self.sampled += seq.sampler.steps
            seq.sampler.close()
            seq.sampler = None
        if seq.slot >= 0:
            self._lib.llama_memory_seq_rm(self._memory, seq.slot, -1, -1)
            seq.slot = -1

    def _completion(self, seq: _Sequence, finish_reason: str) -> Completion:
        return Completion(
            text=seq.text.decode("utf-8", errors="ignore"),
            model="",
            finish_reason=finish_reason,
            prompt_tokens=len(seq.tokens),
            completion_tokens=len(seq.generated),
        )

    def _try_sample(self, seq: _Sequence, logits):
        """The sampled token, or the exception that sampling raised (reported for this sequence only)."""
        try:
            if not logits:
                raise RuntimeError("llama.cpp returned no logits for this sequence")
            return seq.sampler.sample(logits)
        except Exception as err:  # noqa: BLE001
            return err

    def _accept(self, seq: _Sequence, token: int) -> str | None:
        """Take a sampled token; the finish reason when the sequence is done, else None."""
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            return "stop"
        seq.generated.append(token)
        n = self._lib.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        seq.text += self._piece.raw[: max(n, 0)]
        for stop in seq.stop:
            at = seq.text.find(stop)
            if at >= 0:
                seq.text = seq.text[:at]
                return "stop"
        if len(seq.generated) >= seq.max_tokens:
            return "length"
        seq.next_token = token
        return None

    def generate(
        self,
        requests: Sequence[ChatRequest],
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        model_name: str = "",
    ) -> list:
        """One Completion per request, in order. A request that cannot run (prompt longer than the context, a
        grammar llama.cpp rejects) gets ``finish_reason="error"`` alone; a failed ``llama_decode`` fails the
        sequences that were in that call. Nothing is raised for one request."""
        results: list = [None] * len(requests)
        waiting: collections.deque = collections.deque()
        for index, request in enumerate(requests):
            try:
                waiting.append(self._prepare(index, request, max_tokens, temperature, top_p))
            except Exception as err:  # noqa: BLE001 - reported for this request only
                results[index] = _error(err)
        slots: list = [None] * self.n_parallel
        try:
            self._run(waiting, slots, results)
        finally:  # also when interrupted: free the samplers and KV cells of unfinished sequences
            for seq in slots:
                if seq is not None:
                    self._release(seq)
        return [r._replace(model=model_name) for r in results]

    def _run(self, waiting: collections.deque, slots: list, results: list) -> None:
        lib = self._lib
        while waiting or any(slots):
            for slot in range(self.n_parallel):  # give free slots to waiting prompts
                while slots[slot] is None and waiting:
                    seq = waiting.popleft()
                    try:
                        seq.sampler = self._sampler(seq)
                    except Exception as err:  # noqa: BLE001
                        results[seq.index] = _error(err)
                        continue
                    seq.slot = slot
                    lib.llama_memory_seq_rm(self._memory, slot, -1, -1)
                    slots[slot] = seq
            active = [s for s in slots if s is not None]
            n = 0
            for seq in active:  # one token of every generating sequence first
                seq.output_index = -1
                if seq.next_token is not None:
                    self._add(n, seq.next_token, len(seq.tokens) + len(seq.generated) - 1, seq.slot, True)
                    seq.output_index = n
                    seq.next_token = None
                    n += 1
            for seq in active:  # then as many prompt tokens as fit
                while seq.fed < len(seq.tokens) and n < self._n_batch:
                    last = seq.fed == len(seq.tokens) - 1
                    self._add(n, seq.tokens[seq.fed], seq.fed, seq.slot, last)
                    if last:
                        seq.output_index = n
                    seq.fed += 1
                    n += 1
            self._batch.n_tokens = n
            rc = lib.llama_decode(self._ctx, self._batch)
            if rc != 0:
                for seq in active:
                    results[seq.index] = _error(RuntimeError(f"llama_decode returned {rc}"))
                    slots[seq.slot] = None
                    self._release(seq)
                continue
            ready = [s for s in active if s.output_index >= 0]
            logits = [lib.llama_get_logits_ith(self._ctx, s.output_index) for s in ready]  # here, not on threads
            if self._pool is not None and len(ready) > 1:
                sampled = list(self._pool.map(self._try_sample, ready, logits))
            else:
                sampled = [self._try_sample(s, p) for s, p in zip(ready, logits, strict=True)]
            for seq, token in zip(ready, sampled, strict=True):
                if isinstance(token, Exception):
                    results[seq.index] = _error(token)
                    slots[seq.slot] = None
                    self._release(seq)
                    continue
                finish = self._accept(seq, token)
                if finish is not None:
                    results[seq.index] = self._completion(seq, finish)
                    slots[seq.slot] = None
                    self._release(seq)


def _error(err: Exception) -> Completion:
    return Completion(text="", model="", finish_reason="error", error=f"{type(err).__name__}: {err}")
