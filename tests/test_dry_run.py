"""--dry-run: calls no model, writes nothing, counts the planned calls per category, prices them; bad flags exit 2."""

import re

import pytest
from apache_beam.ml.inference.base import ModelHandler

from pipelines import dry_run, generate
from pipelines.options import parse_args, to_config
from tests.support.fakes import FakeHandler
from tests.support.helpers import read_table
from tests.support.standins.vertex_batch import BatchStandIn
from transforms import recipe

REMOTE = ["--model", "openai:some-model", "--api-base", "http://127.0.0.1:9/v1"]
SIZES = ["--brainstorm-rounds", "2", "--tasks-per-category", "3", "--examples-per-task", "2"]
SIZES += ["--examples-per-symmetric-type", "5"]


class RefusingHandler(ModelHandler):
    """Fails the test if Beam ever loads it or hands it a batch."""

    def load_model(self):
        raise AssertionError("--dry-run loaded a model")

    def run_inference(self, batch, model, inference_args=None):
        raise AssertionError("--dry-run called the model")


def _table(printed: str) -> dict:
    """(category, stage) -> (calls, input tokens, output cap, expected) from the printed table."""
    rows = {}
    for line in printed.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[0] in recipe.CATEGORIES:
            rows[(cells[0], cells[1].rstrip("*"))] = tuple(int(c.replace(",", "")) for c in cells[2:6])
    return rows


def _planned(config) -> dict:
    """The calls per (category, stage) the sizes of ``config`` ask for, from the size flags or the mix plan."""
    counts = dry_run.plan_counts(config)
    planned = {}
    for category, (rounds, tasks, per_task) in counts.items():
        if recipe.get_task_type(category).brainstorm:
            planned[(category, "brainstorm")] = rounds
            planned[(category, "generate")] = tasks * per_task
        else:
            planned[(category, "generate")] = per_task
    return planned


def test_dry_run_calls_no_model_writes_nothing_and_counts_the_planned_calls(tmp_path, capsys):
    out = tmp_path / "out"
    code = generate.run(["--dry-run", "--output", str(out), *REMOTE, *SIZES], handler=RefusingHandler())
    printed = capsys.readouterr().out
    assert code == 0
    assert not out.exists(), "a dry run must not even create --output (no lock, no journal)"
    table = _table(printed)
    expected = {}
    for t in recipe.TASK_TYPES:
        if t.brainstorm:
            expected[(t.name, "brainstorm")] = 2
            expected[(t.name, "generate")] = 3 * 2
        else:
            expected[(t.name, "generate")] = 5
    assert {k: v[0] for k, v in table.items()} == expected
    args = parse_args(["--output", str(out), *REMOTE, *SIZES])[0]
    config = to_config(args)
    assert {k: v[0] for k, v in table.items()} == _planned(config)
    for calls, input_tokens, cap, expect in table.values():  # caps never above --max-tokens per call
        assert input_tokens > 20 * calls and 0 < expect <= cap <= args.max_tokens * calls
    assert "4 characters per token" in printed and "stand-in task" in printed
    assert "6 model-call stages" in printed  # brainstorm and generate, 1 + 2 attempts each, in the built graph
    assert "at most 126 calls" in printed  # 4 x (2 + 6) + 2 x 5 = 42 first attempts, x (1 + 2 re-asks)
    assert "cost" not in printed.split("re-asks")[1]  # no prices given: no cost line


def test_dry_run_counts_equal_what_a_real_run_writes(tmp_path, capsys):
    sizes = ["--tasks-per-category", "3", "--examples-per-task", "2", "--examples-per-symmetric-type", "4"]
    dry = ["--dry-run", "--output", str(tmp_path / "dry"), *REMOTE, *sizes]
    assert generate.run(dry, handler=RefusingHandler()) == 0
    table = _table(capsys.readouterr().out)
    assert generate.run(["--output", str(tmp_path / "real"), *REMOTE, *sizes], handler=FakeHandler()) == 0
    capsys.readouterr()
    for category in recipe.CATEGORIES:
        assert table[(category, "generate")][0] == len(read_table(str(tmp_path / "real"), category)), category
    assert not (tmp_path / "dry").exists()


def test_dry_run_follows_the_paper_mix(tmp_path, capsys):
    pytest.importorskip("transforms.mix", reason="--mix paper is not on this branch yet")
    argv = ["--output", str(tmp_path / "out"), *REMOTE, "--mix", "paper", "--examples", "300"]
    assert generate.run(["--dry-run", *argv], handler=RefusingHandler()) == 0
    table = _table(capsys.readouterr().out)
    assert {k: v[0] for k, v in table.items()} == _planned(to_config(parse_args(argv)[0]))
    assert sum(v[0] for (_, stage), v in table.items() if stage == "generate") >= 300


def test_cost_arithmetic_and_batch_halving():
    online = dry_run.StageEstimate("text-retrieval", "generate", 10, 2_000_000, 4_000_000, 1_000_000)
    batch = dry_run.StageEstimate("text-retrieval", "generate", 10, 2_000_000, 4_000_000, 1_000_000, online=False)
    prices = dry_run.DryRunSettings(price_input=0.5, price_output=3.0)
    assert dry_run.cost([online], prices) == pytest.approx(2 * 0.5 + 1 * 3.0)
    assert dry_run.cost([online], prices, "cap") == pytest.approx(2 * 0.5 + 4 * 3.0)
    assert dry_run.cost([online], prices, "cap", calls=3) == pytest.approx(3 * (2 * 0.5 + 4 * 3.0))
    assert dry_run.cost([batch], prices) == pytest.approx((2 * 0.5 + 1 * 3.0) / 2)
    assert dry_run.cost([online, batch], dry_run.DryRunSettings(price_input=1.0)) == pytest.approx(2 + 1)


def _expected_dollars(printed: str) -> float:
    return float(re.search(r"expected \$([0-9.]+);", printed).group(1))


def test_vertex_batch_halves_the_printed_cost(monkeypatch, tmp_path, capsys):
    with BatchStandIn() as standin:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", standin.write_adc_file(tmp_path))
        monkeypatch.setenv("NO_GCE_CHECK", "True")
        for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        argv = [
            "--dry-run", "--output", str(tmp_path / "out"), "--model", "gemini:gemini-2.5-flash",
            "--api-base", standin.url, "--project", "p", "--region", "us-central1",
            "--categories", "monolingual-triplet", "--examples-per-symmetric-type", "40",
            "--price-input", "1000", "--price-output", "4000",
        ]  # fmt: skip
        assert generate.run(argv) == 0
        online = capsys.readouterr().out
        batch_argv = [*argv, "--vertex-batch", "--temp_location", str(tmp_path / "tmp")]
        assert generate.run(batch_argv) == 0
        batch = capsys.readouterr().out
        assert standin.creates == 0 and not standin.jobs, "a dry run submitted a batch job"
    assert _expected_dollars(batch) == pytest.approx(_expected_dollars(online) / 2, rel=1e-3)
    assert _expected_dollars(online) > 1
    assert "generate*" in batch and "half price" in batch and "generate*" not in online
    assert "3 model-call stages" in online and "3 model-call stages" in batch  # one generate stage per attempt
    assert not (tmp_path / "out").exists() and not (tmp_path / "tmp").exists()


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--dry-run", "--price-input", "-1"], "--price-input"),
        (["--dry-run", "--price-output", "nan"], "--price-output"),
        (["--dry-run", "--price-output", "inf"], "--price-output"),
        (["--price-input", "0.3"], "--price-input applies only with --dry-run"),
        (["--price-output", "2.5"], "--price-output applies only with --dry-run"),
        (["--dry-run", "--examples-per-task", "0"], "--examples-per-task"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag_before_anything_runs(tmp_path, capsys, extra, flag):
    out = tmp_path / "out"
    assert generate.run(["--output", str(out), *REMOTE, *extra], handler=RefusingHandler()) == 2
    captured = capsys.readouterr()
    assert flag in captured.err and captured.out == ""
    assert not out.exists()


def test_a_price_that_is_not_a_number_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        generate.run(["--output", str(tmp_path / "out"), *REMOTE, "--dry-run", "--price-input", "cheap"])
    assert raised.value.code == 2 and "--price-input" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_default_embedded_dry_run_uses_the_models_tokenizer_and_never_loads_the_model(monkeypatch, tmp_path, capsys):
    from transforms.models import llama_cpp

    def refuse(self):
        raise AssertionError("--dry-run loaded the embedded model")

    monkeypatch.setattr(llama_cpp.LlamaCppHandler, "load_model", refuse)
    out = tmp_path / "out"
    argv = ["--output", str(out), *SIZES]
    assert generate.run(["--dry-run", *argv]) == 0
    printed = capsys.readouterr().out
    table = _table(printed)
    assert {k: v[0] for k, v in table.items()} == _planned(to_config(parse_args(argv)[0]))
    assert "own tokenizer" in printed
    assert all(input_tokens > 20 * calls for calls, input_tokens, _, _ in table.values())
    assert not out.exists()
