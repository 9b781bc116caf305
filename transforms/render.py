"""Prompt rendering: one jinja2 Environment (StrictUndefined) over the packaged templates (RenderPrompts)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
import json
import logging

import apache_beam as beam
import jinja2

from transforms import recipe
from transforms.budget import BudgetSpec, char_limits, token_budget_for
from transforms.elements import STAGE_BRAINSTORM, Element, PromptRequest, derive_seed
from transforms.templates import TemplateChoice, choose_template

__all__ = [
    "RenderPrompts",
    "render",
    "render_template",
    "template_name",
    "template_variables",
    "template_source",
    "template_sha256",
    "environment",
]

_LOGGER = logging.getLogger(__name__)


# Templates added in-process (by name), found after the packaged ones: tests register a toy task type's here.
_EXTRA_TEMPLATES: dict[str, str] = {}


@contextlib.contextmanager
def extra_templates(templates: dict[str, str]):
    """Make ``templates`` (name -> source) renderable for the duration of a ``with`` block."""
    clash = [name for name in templates if name in _EXTRA_TEMPLATES]
    if clash:
        raise ValueError(f"templates already added: {', '.join(clash)}")
    _EXTRA_TEMPLATES.update(templates)
    try:
        yield
    finally:
        for name in templates:
            _EXTRA_TEMPLATES.pop(name, None)
        if environment().cache is not None:
            environment().cache.clear()
        template_source.cache_clear()
        template_sha256.cache_clear()


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The process-wide Environment; templates compile once per process and are cached by jinja2."""
    root = importlib.resources.files("prompts")
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(root)), jinja2.DictLoader(_EXTRA_TEMPLATES)]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        auto_reload=False,
    )


@functools.cache
def template_source(name: str) -> str:
    source, _, _ = environment().loader.get_source(environment(), name)
    return source


@functools.cache
def template_sha256(name: str) -> str:
    return hashlib.sha256(template_source(name).encode("utf-8")).hexdigest()[:16]


@functools.cache
def _schema_text(task_type: recipe.TaskType | None, limits: tuple = ()) -> str:
    if task_type is None:
        return json.dumps(recipe.BRAINSTORM_SCHEMA, sort_keys=True)
    return json.dumps(task_type.json_schema(dict(limits)), sort_keys=True)


def _schema_json(element: Element, budget: BudgetSpec | None = None) -> str:
    """The reply schema of one element; string lengths fit what its prompt asks (transforms/budget.py)."""
    if element.stage == STAGE_BRAINSTORM:
        return _schema_text(None)
    limits = char_limits(element, budget)
    return _schema_text(recipe.get_task_type(element.category), tuple(sorted(limits.items())))


def template_variables(element: Element) -> dict[str, str]:
    """The variables a template is rendered with: attributes (languages by English name) and the task."""
    task_type = recipe.get_task_type(element.category)
    if element.stage == STAGE_BRAINSTORM:
        return {"num_tasks": str(recipe.BRAINSTORM_MAX_TASKS)}
    variables = {}
    for name, value in element.attributes:
        attr = task_type.attribute(name)
        variables[name] = recipe.language_name(value) if attr.is_language else value
    if task_type.brainstorm:
        variables["task"] = element.task
    return variables


def template_name(element: Element, run_seed: int, choice: TemplateChoice | None = None) -> str:
    """The template path of ``element``: pinned by ``choice``, else drawn per element (transforms/templates.py)."""
    return choose_template(element, run_seed, choice)


def render_template(name: str, element: Element) -> str:
    """The text of template ``name`` rendered for ``element``; an undefined variable raises (StrictUndefined)."""
    return environment().get_template(name).render(**template_variables(element))


def render(
    element: Element, run_seed: int, choice: TemplateChoice | None = None, budget: BudgetSpec | None = None
) -> PromptRequest:
    """Render the prompt of one element with its drawn (or pinned) template; an undefined variable raises.

    The request's ``max_tokens`` is what its prompt asks for (transforms/budget.py), bounded later by the
    backend's ``--max-tokens``.
    """
    name = template_name(element, run_seed, choice)
    prompt = render_template(name, element)
    return PromptRequest(
        element=element,
        prompt=prompt,
        template=name,
        template_sha256=template_sha256(name),
        schema_json=_schema_json(element, budget),
        sampling_seed=derive_seed(run_seed, element.element_id, "model", 0),
        max_tokens=token_budget_for(element, budget),
    )


class _RenderDoFn(beam.DoFn):
    def __init__(self, run_seed: int, choice: TemplateChoice | None, budget: BudgetSpec | None = None):
        self._run_seed = run_seed
        self._choice = choice
        self._budget = budget

    def setup(self):
        environment()  # build the Environment on the worker, once

    def process(self, element: Element):
        yield render(element, self._run_seed, self._choice, self._budget)


class RenderPrompts(beam.PTransform):
    """Elements -> PromptRequests (prompt text, template name and hash, JSON schema, sampling seed, token cap).

    Args:
        run_seed: The run seed (template draw and sampling seed).
        choice: Templates pinned by ``--template``; None draws every element's template.
        budget: How token caps are sized (transforms/budget.py); None: the default sizing.
    """

    def __init__(self, run_seed: int, choice: TemplateChoice | None = None, budget: BudgetSpec | None = None):
        super().__init__()
        self._run_seed = run_seed
        self._choice = choice
        self._budget = budget

    def expand(self, elements):
        return elements | "Render" >> beam.ParDo(_RenderDoFn(self._run_seed, self._choice, self._budget))
