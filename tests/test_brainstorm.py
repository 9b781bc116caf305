"""The brainstormed tasks on the DirectRunner: exact duplicates merged, near-duplicates dropped, a seeded cap."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to

from tests.support.fakes import FakeHandler
from transforms.brainstorm import (
    CapPerCategory,
    DedupTasks,
    DropNearDuplicateTasks,
    brainstorm_elements,
    normalize_task,
)
from transforms.elements import STAGE_BRAINSTORM
from transforms.inference import ModelCalls

TASKS = [f"Find recipes that use ingredient number {i} in a dish" for i in range(10)]


def _keyed(pairs):
    return [((c, normalize_task(t)), t) for c, t in pairs]


def test_spellings_that_normalize_alike_become_one_task_the_smallest():
    pairs = [("text-retrieval", "Find a Poem."), ("text-retrieval", "find  a poem"), ("text-retrieval", "Other")]
    with TestPipeline() as p:
        out = p | beam.Create(_keyed(pairs)) | DedupTasks()
        assert_that(out, equal_to([("text-retrieval", "Find a Poem."), ("text-retrieval", "Other")]))


def _same_kept_tasks(got):
    (first, second) = [kept for _, kept in sorted(got)]
    if first != second or len(first) != 5:
        raise BeamAssertException(f"the cap kept {first} one way and {second} the other")
    per_category = {c: sum(1 for k, _ in first if k == c) for c, _ in first}
    if per_category != {"text-retrieval": 3, "text-classification": 2}:
        raise BeamAssertException(f"kept per category: {per_category}")


def test_the_cap_keeps_the_same_tasks_whatever_the_input_order():
    pairs = [("text-retrieval", t) for t in TASKS] + [("text-classification", t) for t in TASKS[:2]]
    with TestPipeline() as p:
        kept = []
        for name, order in (("Forward", pairs), ("Backward", pairs[::-1])):
            kept.append(
                p
                | f"Create{name}" >> beam.Create(order)
                | f"Cap{name}" >> CapPerCategory(3, 7)
                | f"All{name}" >> beam.combiners.ToList()
                | f"Tag{name}" >> beam.Map(lambda rows, tag=name: (tag, sorted(rows)))
            )
        assert_that(kept | beam.Flatten(), _same_kept_tasks)


def test_near_duplicate_tasks_are_dropped_within_a_category_only():
    near = "Find recipes that use ingredient number 1 in a dish today"
    pairs = [("text-retrieval", TASKS[1]), ("text-retrieval", near), ("text-classification", near)]
    with TestPipeline() as p:
        out = p | beam.Create(pairs) | DropNearDuplicateTasks(0.7, 7) | beam.Map(lambda pair: pair[0])
        assert_that(out, equal_to(["text-retrieval", "text-classification"]))


def test_brainstorm_elements_have_stable_distinct_ids():
    first = brainstorm_elements(["text-retrieval", "text-classification"], 3, 42)
    assert first == brainstorm_elements(["text-retrieval", "text-classification"], 3, 42)
    assert len({e.element_id for e in first}) == 6 and all(e.stage == STAGE_BRAINSTORM for e in first)
    assert brainstorm_elements(["text-retrieval"], 1, 43)[0].element_id != first[0].element_id


def test_brainstorm_tasks_takes_one_bundle_of_model_call_settings():
    from transforms.brainstorm import BrainstormTasks

    calls = ModelCalls(FakeHandler(), 42, 1)
    with TestPipeline() as p:
        tasks, dead = p | BrainstormTasks(["text-retrieval"], 2, 3, calls)
        assert_that(tasks | beam.Map(lambda pair: pair[0]), equal_to(["text-retrieval"] * 3), label="Capped")
        assert_that(dead, equal_to([]), label="Dead")
