"""Element ids and per-element attribute sampling (SampleAttributes)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

import apache_beam as beam

from transforms import metrics, recipe
from transforms.elements import STAGE_GENERATE, Element, element_rng, stable_id

__all__ = ["SamplingSpec", "SampleAttributes", "sample_attributes", "generation_elements", "symmetric_elements"]

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """What the sampler needs: the run seed, pinned values and the weighted language pool.

    Attributes:
        seed: The run seed.
        pinned: ``(attribute, value)`` pairs fixed by the user (language values are codes).
        languages: ``(code, weight)`` pairs of the language pool.
    """

    seed: int
    pinned: tuple = ()
    languages: tuple = tuple(recipe.DEFAULT_LANGUAGE_WEIGHTS.items())

    @property
    def pinned_map(self) -> Mapping[str, str]:
        return dict(self.pinned)


def _weighted_choice(rng, pool: Iterable[tuple[str, float]], exclude: str | None = None) -> str:
    items = [(c, w) for c, w in pool if c != exclude]
    if not items:
        raise ValueError("the language pool has no language left to choose from")
    codes, weights = zip(*items, strict=True)
    return rng.choices(codes, weights=weights, k=1)[0]


def sample_attributes(element: Element, spec: SamplingSpec) -> Element:
    """Fill ``element.attributes`` from an RNG private to (run seed, element id).

    Pinned values are used as they are; other attributes are drawn uniformly from their
    values, languages from the weighted pool. A language attribute declared ``differs_from`` another
    (the bitext target) never takes that one's value, and the other is drawn around it when it is pinned.
    """
    task_type = recipe.get_task_type(element.category)
    pinned = spec.pinned_map
    # attribute -> the attribute it must differ from, both ways round
    apart = {a.name: a.differs_from for a in task_type.attributes if a.differs_from}
    apart.update({other: name for name, other in list(apart.items())})
    rng = element_rng(spec.seed, element.element_id)
    values: dict[str, str] = {}
    for attr in task_type.attributes:
        # Draw for every attribute even when pinned, so pinning one attribute never shifts the others.
        if attr.is_language:
            other = apart.get(attr.name)
            exclude = values.get(other) if other in values else pinned.get(other)
            drawn = _weighted_choice(rng, spec.languages, exclude=exclude if attr.name not in pinned else None)
        else:
            drawn = rng.choice(attr.values)
        values[attr.name] = pinned.get(attr.name, drawn)
    for name, other in apart.items():
        if values[name] == values[other]:
            raise ValueError(f"element {element.element_id}: {name} and {other} are both {values[name]}")
    return element._replace(attributes=tuple((a, values[a]) for a in task_type.attribute_names))


def generation_elements(category: str, task: str, examples_per_task: int, seed: int) -> Iterable[Element]:
    """One generation element per repetition of a brainstormed task, with a stable id."""
    for rep in range(examples_per_task):
        yield Element(stable_id(seed, category, task, rep), category, STAGE_GENERATE, task)


def symmetric_elements(category: str, count: int, seed: int) -> Iterable[Element]:
    """``count`` generation elements of a symmetric type (no task), with stable ids."""
    for index in range(count):
        yield Element(stable_id(seed, category, index), category, STAGE_GENERATE, None)


class _SampleDoFn(beam.DoFn):
    def __init__(self, spec: SamplingSpec):
        self._spec = spec

    def setup(self):
        self._counters = metrics.Counters()

    def process(self, element: Element):
        self._counters.inc(metrics.REQUESTED, element.category)
        yield sample_attributes(element, self._spec)


class SampleAttributes(beam.PTransform):
    """Elements without attributes -> elements with their attributes drawn (and counted as requested)."""

    def __init__(self, spec: SamplingSpec):
        super().__init__()
        self._spec = spec

    def expand(self, elements):
        return elements | "Sample" >> beam.ParDo(_SampleDoFn(self._spec))
