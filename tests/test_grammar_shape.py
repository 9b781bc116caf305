"""The shape of the GBNF grammars written for our two schema shapes (an object of strings, an array of strings)."""

import json
import re

import pytest

from transforms import recipe
from transforms.elements import Element
from transforms.models.grammar import gbnf_for_schema
from transforms.render import render


def _rules(gbnf: str) -> dict:
    return dict(line.split(" ::= ", 1) for line in gbnf.strip().splitlines())


@pytest.mark.parametrize("task_type", [t for t in recipe.TASK_TYPES], ids=lambda t: t.name)
def test_an_object_schema_asks_for_every_key_in_order_each_with_one_bounded_string_rule(task_type):
    attributes = tuple(
        (a.name, (a.values or ("en", "sw"))[i % 2 if a.is_language else 0]) for i, a in enumerate(task_type.attributes)
    )
    request = render(Element("g1", task_type.name, "generate", task="A task.", attributes=attributes), run_seed=1)
    schema = json.loads(request.schema_json)
    rules = _rules(gbnf_for_schema(schema))
    keys = re.findall(r'"\\"([^"\\]+)\\""', rules["root"])
    assert keys == list(schema["required"]) == list(task_type.output_keys)
    for index, key in enumerate(schema["required"]):
        blocks = schema["properties"][key].get("maxLength", 4000) // 8
        assert f"block{{0,{blocks}}}" in rules[f"value{index}"] or f"block{{1,{blocks}}}" in rules[f"value{index}"]
    assert rules["root"].startswith('"{" ws') and rules["root"].endswith('ws "}"')


def test_an_array_schema_bounds_the_number_of_items():
    schema = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 80}, "maxItems": 5}
    rules = _rules(gbnf_for_schema(schema))
    assert rules["root"] == '"[" ws item (ws "," ws item){0,4} ws "]"'
    assert rules["item"] == '"\\"" (block{1,10} char{0,7} | char{1,7}) "\\""'


def test_the_shared_rules_are_defined_once():
    gbnf = gbnf_for_schema({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}})
    names = [line.split(" ::= ")[0] for line in gbnf.strip().splitlines()]
    assert sorted(names) == sorted(set(names)) == ["block", "char", "root", "value0", "ws"]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "number"},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "minLength": 2}}},
    ],
)
def test_other_shapes_are_refused(schema):
    with pytest.raises(ValueError):
        gbnf_for_schema(schema)
