"""Grammar-constrained sampling that checks the grammar on the sampled token only, and on the vocabulary when needed.

Applying a GBNF grammar to every token of the vocabulary at every step costs more than the decode step itself for a
small model. ``ConstrainedSampler`` samples from the unconstrained chain first (top-k, typical, top-p, min-p,
temperature, seeded draw), then asks the grammar about that one token. If the grammar accepts it, it is the reply's
next token; if not, the grammar is applied to the whole vocabulary and the token is drawn again from the constrained
chain (grammar, then the same chain with its own seeded draw). This is the order llama.cpp's own common sampler uses
when "grammar first" is off. Every token taken is accepted by the grammar, so every finished reply parses under its
schema, and the draws are seeded, so the same logits give the same tokens.

Without a grammar the sampler is the plain unconstrained chain (used to measure free decoding).
"""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np

__all__ = ["ConstrainedSampler", "SamplingSettings"]

_REJECTED = float("-inf")


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    """The sampling chain's parameters, as llama-cpp-python's ``create_completion`` defaults them."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    seed: int = 0

    @classmethod
    def from_call(cls, call: dict, default_seed: int) -> SamplingSettings:
        """The settings of a recorded ``create_completion`` call (missing values take its defaults)."""
        seed = call.get("seed")
        return cls(
            temperature=call.get("temperature", 0.8),
            top_k=call.get("top_k", 40),
            top_p=call.get("top_p", 0.95),
            min_p=call.get("min_p", 0.05),
            typical_p=call.get("typical_p", 1.0),
            seed=default_seed if seed is None else seed,
        )


def _token_dtype(lib) -> np.dtype:
    dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
    if dtype.itemsize != ctypes.sizeof(lib.llama_token_data):
        raise RuntimeError("unexpected llama_token_data layout")
    return dtype


class ConstrainedSampler:
    """One sequence's sampler: a grammar (or none) and two seeded chains over a private candidate array.

    Args:
        lib: The ``llama_cpp`` module.
        vocab: The model's ``llama_vocab`` pointer.
        n_vocab: Tokens in the vocabulary.
        grammar: GBNF text with a ``root`` rule, or None for unconstrained sampling.
        settings: The chain's parameters and seed.
        grammar_first: Apply the grammar to the whole vocabulary at every token, then draw from the constrained
            chain (what ``create_chat_completion`` does; slower, kept for comparison).

    Attributes:
        fallbacks: Tokens drawn from the constrained chain because the grammar rejected the unconstrained draw.
        steps: Tokens sampled.
    """

    def __init__(
        self, lib, vocab, n_vocab: int, grammar: str | None, settings: SamplingSettings, grammar_first: bool = False
    ):
        self._lib = lib
        self._grammar_first = grammar_first and grammar is not None
        self._n_vocab = n_vocab
        self._grammar = None
        self._free = self._fallback = None
        self.fallbacks = 0
        self.steps = 0
        try:
            if grammar is not None:
                self._grammar = lib.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
                if not self._grammar:
                    raise ValueError("llama.cpp rejected the grammar")
                # The constrained draw gets a seed of its own, so it never shifts the unconstrained chain's draws.
                self._fallback = self._chain(settings, (settings.seed ^ 0x5BD1E995) & 0xFFFFFFFF)
            self._free = self._chain(settings, settings.seed)
        except Exception:
            self.close()
            raise
        dtype = _token_dtype(lib)
        self._candidates = np.zeros(n_vocab, dtype=dtype)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._one = np.zeros(1, dtype=dtype)

    def _chain(self, s: SamplingSettings, seed: int):
        """The sampling chain of ``Llama._init_sampler`` (without penalties), drawing with ``seed``."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if s.temperature < 0.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
        elif s.temperature == 0.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(s.top_k))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_typical(s.typical_p, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(s.top_p, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(s.min_p, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(s.temperature))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
        return chain

    def close(self) -> None:
        """Free the llama.cpp samplers (the chains own theirs)."""
        for name in ("_grammar", "_free", "_fallback"):
            sampler = getattr(self, name)
            if sampler is not None:
                self._lib.llama_sampler_free(sampler)
                setattr(self, name, None)

    def _array(self, buffer: np.ndarray, size: int):
        lib = self._lib
        return lib.llama_token_data_array(
            data=buffer.ctypes.data_as(lib.llama_token_data_p), size=size, selected=-1, sorted=False
        )

    def _draw(self, chain, logits: np.ndarray, grammar=None) -> int:
        """Fill the candidates from ``logits``, apply ``grammar`` (if any) then ``chain``; the selected token."""
        lib = self._lib
        candidates = self._candidates
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = self._array(candidates, self._n_vocab)
        if grammar is not None:
            lib.llama_sampler_apply(grammar, ctypes.byref(array))
        lib.llama_sampler_apply(chain, ctypes.byref(array))
        if not 0 <= array.selected < array.size:
            raise RuntimeError("the sampler chain selected no token")
        return int(array.data[array.selected].id)

    def allows(self, token: int) -> bool:
        """Whether the grammar, in its current state, accepts ``token`` next (always True without a grammar)."""
        if self._grammar is None:
            return True
        one = self._one
        one["id"] = token
        one["logit"] = 0.0
        one["p"] = 0.0
        array = self._array(one, 1)
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(array))
        return bool(np.isfinite(one["logit"][0]))

    def sample(self, logits_pointer) -> int:
        """The next token for these logits (a ctypes float pointer of ``n_vocab`` values); the grammar takes it.

        Touches only this sampler's own buffers, so samplers of different sequences may run on different threads.
        """
        logits = np.ctypeslib.as_array(logits_pointer, shape=(self._n_vocab,))
        self.steps += 1
        if self._grammar_first:
            token = self._draw(self._free, logits, self._grammar)
        else:
            token = self._draw(self._free, logits)
        if not self._grammar_first and not self.allows(token):
            self.fallbacks += 1
            token = self._draw(self._fallback, logits, self._grammar)
        if self._grammar is not None:
            self._lib.llama_sampler_accept(self._grammar, token)
        return token
