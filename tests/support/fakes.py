"""Fake model handlers for tests about our code's reaction to replies (never used by the main job)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms import recipe
from transforms.elements import STAGE_BRAINSTORM, Completion, PromptRequest


def valid_reply(request: PromptRequest) -> str:
    """A valid JSON reply for any request, derived from its element id (deterministic)."""
    element = request.element
    if element.stage == STAGE_BRAINSTORM:
        return json.dumps([f"Given a {element.category} need number {i}, find what helps." for i in range(5)])
    task_type = recipe.get_task_type(element.category)
    return json.dumps({key: f"{key} text for {element.element_id}" for key in task_type.output_keys})


class _FakeModel:
    """Stands in for a loaded model (Beam keeps a weak reference to it)."""


class FakeHandler(ModelHandler[PromptRequest, PredictionResult, object]):
    """Answers each request with ``reply(request)``; a reply may also be a Completion."""

    def __init__(self, reply: Callable = valid_reply, model_name: str = "fake-model"):
        self._reply = reply
        self._model_name = model_name

    def load_model(self):
        return _FakeModel()

    def run_inference(self, batch: Sequence[PromptRequest], model, inference_args: dict | None = None):
        results = []
        for request in batch:
            reply = self._reply(request)
            if not isinstance(reply, Completion):
                reply = Completion(text=reply, model=self._model_name, prompt_tokens=10, completion_tokens=20)
            results.append(PredictionResult(request, reply, self._model_name))
        return results

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 3}
