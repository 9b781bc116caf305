"""Compact GBNF grammars for our JSON schemas, with string lengths bounded so decoding always terminates.

llama.cpp's generic JSON-schema converter expands ``maxLength: N`` into N nested rules, which
its grammar parser rejects for the lengths documents need (and the process then crashes).
Our schemas have two shapes only (an object of required string keys, an array of strings),
so we write the grammar directly: a string is ``"``, up to K blocks of exactly 8 characters,
then 0..7 more characters, then ``"``. That bounds its length to 8K + 7 with about K rule
expansions instead of 8K, and every string has exactly one parse, so the grammar sampler
never tracks more than a couple of parse stacks per token.
"""

from __future__ import annotations

import json

__all__ = ["gbnf_for_schema"]

_BLOCK = 8
_COMMON = r"""
ws ::= [ \t\n]{0,4}
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
block ::= char char char char char char char char
"""


def _string_rule(name: str, min_length: int, max_length: int) -> str:
    if min_length > 1:
        raise ValueError("string minLength above 1 is not supported")
    blocks = max_length // _BLOCK
    if min_length == 1:
        # Non-empty: at least one block, or no block and 1..7 characters (still one parse per string).
        return f'{name} ::= "\\"" (block{{1,{blocks}}} char{{0,7}} | char{{1,7}}) "\\""'
    return f'{name} ::= "\\"" block{{0,{blocks}}} char{{0,7}} "\\""'


def _literal(text: str) -> str:
    return json.dumps(json.dumps(text))  # a GBNF literal matching the JSON-encoded key


def gbnf_for_schema(schema: dict) -> str:
    """GBNF accepting exactly the JSON documents of ``schema`` (our two shapes), lengths bounded.

    Object keys come in the order of ``required`` (the order the prompt asks for them).
    """
    rules = []
    if schema.get("type") == "object":
        parts = []
        for index, key in enumerate(schema["required"]):
            prop = schema["properties"][key]
            if prop.get("type") != "string":
                raise ValueError(f"property {key!r}: only string properties are supported")
            rule = f"value{index}"
            rules.append(_string_rule(rule, prop.get("minLength", 0), prop.get("maxLength", 4000)))
            parts.append(f'{_literal(key)} ws ":" ws {rule}')
        body = ' "," ws '.join(parts)
        root = f'root ::= "{{" ws {body} ws "}}"'
    elif schema.get("type") == "array":
        items = schema["items"]
        if items.get("type") != "string":
            raise ValueError("only arrays of strings are supported")
        rules.append(_string_rule("item", items.get("minLength", 0), items.get("maxLength", 400)))
        most = int(schema.get("maxItems", 20))
        root = f'root ::= "[" ws item (ws "," ws item){{0,{most - 1}}} ws "]"'
    else:
        raise ValueError(f"unsupported schema type {schema.get('type')!r}")
    return "\n".join([root, *rules]) + _COMMON
