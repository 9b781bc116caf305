"""Which prompt template renders an element: a draw seeded by (run seed, element id), or pinned with --template."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Iterable, Mapping

from transforms import recipe
from transforms.config import ConfigError
from transforms.elements import STAGE_BRAINSTORM, STAGE_GENERATE, Element, element_rng

__all__ = [
    "TemplateChoice",
    "TEMPLATE_PURPOSE",
    "template_ids",
    "template_id",
    "template_paths",
    "choose_template",
    "add_template_arguments",
    "template_choice",
]

_LOGGER = logging.getLogger(__name__)

# The purpose string of the per-element RNG that draws the template (attributes use their own).
TEMPLATE_PURPOSE = "template"
_SUFFIX = ".jinja2"


def template_paths(task_type: recipe.TaskType, stage: str) -> tuple[str, ...]:
    """The template paths (under prompts/) one element of ``task_type`` at ``stage`` is drawn from."""
    return task_type.brainstorm_template_paths if stage == STAGE_BRAINSTORM else task_type.template_paths


def template_id(path: str) -> str:
    """The name ``--template`` takes for a template path: the path without ``.jinja2``."""
    return path[: -len(_SUFFIX)] if path.endswith(_SUFFIX) else path


def template_ids() -> tuple[str, ...]:
    """Every template name of every type and stage, e.g. ``generate/text-retrieval/checklist``."""
    ids = []
    for task_type in recipe.TASK_TYPES:
        for stage in (STAGE_BRAINSTORM, STAGE_GENERATE):
            ids.extend(template_id(p) for p in template_paths(task_type, stage))
    return tuple(ids)


def _slot_of(path: str) -> tuple[str, str]:
    """(stage, category) of a declared template path."""
    for task_type in recipe.TASK_TYPES:
        for stage in (STAGE_BRAINSTORM, STAGE_GENERATE):
            if path in template_paths(task_type, stage):
                return stage, task_type.name
    raise KeyError(path)


@dataclasses.dataclass(frozen=True)
class TemplateChoice:
    """Templates pinned by ``--template``: ``((stage, category), path)`` pairs; unpinned slots are drawn.

    Attributes:
        pinned: At most one template path per (stage, category).
    """

    pinned: tuple = ()

    @property
    def pinned_map(self) -> Mapping[tuple[str, str], str]:
        return dict(self.pinned)


def choose_template(element: Element, run_seed: int, choice: TemplateChoice | None = None) -> str:
    """The template path of one element: the pinned one, else a uniform draw from its type's templates.

    The draw uses an RNG private to (run seed, element id, "template"), so it is the same on any runner, in any
    order, and on every re-ask of the element (re-asks keep their request, and so their prompt).
    """
    task_type = recipe.get_task_type(element.category)
    pinned = (choice or TemplateChoice()).pinned_map.get((element.stage, element.category))
    if pinned is not None:
        return pinned
    paths = template_paths(task_type, element.stage)
    if len(paths) == 1:
        return paths[0]
    return element_rng(run_seed, element.element_id, TEMPLATE_PURPOSE).choice(paths)


def _name_summary() -> str:
    names = sorted({n for t in recipe.TASK_TYPES for n in (*t.templates, *t.brainstorm_templates)})
    return ", ".join(names) + " (brainstorm: the four brainstormed categories only)"


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    """The "prompt templates" flag group of `embedgen generate`."""
    group = parser.add_argument_group("prompt templates")
    group.add_argument(
        "--template",
        default=None,
        help=(
            "Pin templates, comma-separated '<stage>/<category>/<name>' (e.g. generate/text-retrieval/checklist); "
            f"the others are drawn per element. Names: {_name_summary()} (docs/flags.md)."
        ),
    )


def _names(value: str | None) -> Iterable[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def template_choice(value: str | None, categories: Iterable[str] = recipe.CATEGORIES) -> TemplateChoice:
    """Validate ``--template`` into a TemplateChoice; ConfigError names the flag and the allowed names."""
    allowed = template_ids()
    selected = set(categories)
    pinned: dict[tuple[str, str], str] = {}
    for name in _names(value):
        key = template_id(name.removeprefix("prompts/"))
        if key not in allowed:
            raise ConfigError(f"--template: unknown template {name!r}; allowed: {', '.join(allowed)}")
        path = key + _SUFFIX
        slot = _slot_of(path)
        if slot[1] not in selected:
            raise ConfigError(
                f"--template {name}: category {slot[1]} is not selected by --categories ({', '.join(sorted(selected))})"
            )
        if slot in pinned and pinned[slot] != path:
            raise ConfigError(
                f"--template: two templates for {slot[0]} of {slot[1]} ({template_id(pinned[slot])}, {key}); "
                "pin at most one per stage and category"
            )
        pinned[slot] = path
    return TemplateChoice(pinned=tuple(sorted(pinned.items())))
