"""Model handlers, one per backend, chosen by --model: embedded (llama.cpp), gemini:<model>, openai:<model>."""

from __future__ import annotations

__all__ = ["make_handler"]


def make_handler(config):
    """The RunInference ModelHandler for ``config.model``."""
    if config.model == "embedded":
        from transforms.models.llama_cpp import LlamaCppConfig, LlamaCppHandler

        return LlamaCppHandler(
            LlamaCppConfig(
                model_path=config.model_path,
                n_ctx=config.n_ctx,
                n_threads=config.n_threads,
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                parallel_sequences=config.llama_parallel_sequences,
                worker_processes=config.worker_processes,
            ),
            max_batch_size=config.batch_size,
        )
    if config.gemini is not None:
        from transforms.models.gemini import GeminiHandler

        return GeminiHandler(config.remote, config.gemini)
    if config.openai is not None:
        from transforms.models.openai_compat import OpenAICompatHandler

        return OpenAICompatHandler(config.remote, config.openai)
    raise ValueError(f"unknown model backend {config.model!r}")
