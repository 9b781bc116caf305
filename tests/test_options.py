"""Bad input fails before any model call, exits non-zero, names the flag and the allowed values, writes nothing."""

import os

import pytest

from pipelines import generate
from pipelines.options import parse_args, to_config
from tests.support.fakes import FakeHandler
from transforms import recipe


class _ExplodingHandler(FakeHandler):
    def load_model(self):
        raise AssertionError("the model must not be loaded when the flags are invalid")


def _fail(tmp_path, capsys, argv):
    out = tmp_path / "out"
    try:
        code = generate.run(["--output", str(out), *argv], handler=_ExplodingHandler())
    except SystemExit as exit_:  # argparse rejects a closed-set value itself
        code = exit_.code
    assert code == 2
    assert not out.exists() or not any(out.rglob("*")), "nothing may be written"
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,must_say",
    [
        (["--categories", "text-ranking"], ["--categories", "text-ranking", "text-retrieval", "bitext-retrieval"]),
        (["--categories", ""], ["--categories", "allowed"]),
        (["--language", "Klingon"], ["--language", "Klingon", "Swahili"]),
        (["--languages", "en,Swahilli"], ["--languages", "Swahilli"]),
        (["--languages", "en:1,sw"], ["--languages", "weight"]),
        (["--languages", "en:-1,sw:1"], ["--languages", "positive"]),
        (["--query-type", "rare"], ["--query-type", "rare", "long-tail"]),
        (["--num-words", "70"], ["--num-words", "'70'", "500"]),
        (["--difficulty", "PhD"], ["--difficulty", "monolingual-triplet", "elementary school"]),
        (["--high-score", "4.5", "--categories", "text-retrieval"], ["--high-score", "monolingual-triplet"]),
        (["--source-language", "en", "--target-language", "English"], ["--source-language", "--target-language"]),
        (["--categories", "bitext-retrieval", "--languages", "en"], ["bitext-retrieval", "--languages"]),
        (["--language", "sw", "--languages", "en,fr"], ["--language", "--languages"]),
        (["--tasks-per-category", "0"], ["--tasks-per-category", "at least 1"]),
        (["--examples-per-task", "-3"], ["--examples-per-task", "at least 1"]),
        (["--examples-per-symmetric-type", "0"], ["--examples-per-symmetric-type"]),
        (["--brainstorm-rounds", "0"], ["--brainstorm-rounds"]),
        (["--max-parse-retries", "-1"], ["--max-parse-retries"]),
        (["--temperature", "3"], ["--temperature"]),
        (["--model", "gpt-9"], ["--model", "embedded"]),
        (["--model-path", "/nonexistent/model.gguf"], ["--model-path", "not a readable file"]),
        (["--seed", "-1"], ["--seed"]),
    ],
)
def test_bad_values_fail_early_and_name_the_flag(tmp_path, capsys, argv, must_say):
    err = _fail(tmp_path, capsys, argv)
    for text in must_say:
        assert text in err, (text, err)


def test_model_path_that_is_not_gguf(tmp_path, capsys):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model")
    err = _fail(tmp_path, capsys, ["--model-path", str(fake)])
    assert "--model-path" in err and "GGUF" in err


def test_output_path_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = generate.run(["--output", str(blocker / "out")], handler=_ExplodingHandler())
    assert code == 2
    assert "--output" in capsys.readouterr().err


def test_unknown_flag_is_refused(tmp_path, capsys):
    err = _fail(tmp_path, capsys, ["--langauge", "sw"])
    assert "--langauge" in err


def test_defaults_are_valid_and_cover_every_category():
    args, beam_args = parse_args([])
    config = to_config(args)
    assert config.categories == recipe.CATEGORIES
    assert config.model.backend == "embedded"
    model_path = config.model.settings.model_path
    assert model_path.endswith(".gguf") and os.path.isfile(model_path)
    assert beam_args == []


def test_names_and_codes_are_both_accepted():
    args, _ = parse_args(["--language", "Swahili", "--languages", "sw,hi:2,Hindi (romanized):1"])
    with pytest.raises(Exception, match="--languages"):
        to_config(args)  # mixing weighted and unweighted entries is refused
    args, _ = parse_args(["--language", "Swahili", "--languages", "sw:1,hi:2"])
    config = to_config(args)
    assert dict(config.sampling.pinned)["language"] == "sw"
    assert dict(config.sampling.languages) == {"sw": 1.0, "hi": 2.0}


def test_beam_flags_pass_through():
    args, beam_args = parse_args(
        ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing", "--seed", "3"]
    )
    assert args.seed == 3
    assert beam_args == ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
