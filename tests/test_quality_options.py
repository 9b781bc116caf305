"""The quality flags of `embedgen generate`: defaults, validation messages that name the flag."""

import pytest

from pipelines.options import ConfigError, parse_args, to_config
from transforms.quality.stage import QualityConfig


def _config(*argv):
    args, _ = parse_args(list(argv))
    return to_config(args)


def test_defaults_run_the_light_checks_and_keep_failing_rows():
    quality = _config().quality
    assert quality == QualityConfig(seed=42)
    assert quality.filter == "flag" and quality.language_checks and not quality.embedding_checks


def test_flags_reach_the_config():
    quality = _config(
        "--quality-filter", "reject", "--word-count-tolerance", "0.3", "--task-dedup-threshold", "0.9",
        "--example-dedup-threshold", "1", "--embedding-checks", "--mine-negatives", "3",
        "--mined-negative-ceiling", "0.9", "--seed", "5",
    ).quality  # fmt: skip
    assert quality == QualityConfig(
        filter="reject",
        word_count_tolerance=0.3,
        task_dedup_threshold=0.9,
        example_dedup_threshold=1.0,
        embedding_checks=True,
        mine_negatives=3,
        mined_negative_ceiling=0.9,
        seed=5,
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--task-dedup-threshold", "0"], "--task-dedup-threshold"),
        (["--example-dedup-threshold", "1.5"], "--example-dedup-threshold"),
        (["--mined-negative-ceiling", "-1"], "--mined-negative-ceiling"),
        (["--word-count-tolerance", "1"], "--word-count-tolerance"),
        (["--mine-negatives", "2"], "--mine-negatives needs --embedding-checks"),
        (["--embedding-checks", "--mine-negatives", "-1"], "--mine-negatives"),
        (["--embedding-checks", "--embedding-model", "no-such-model-package"], "--embedding-model"),
    ],
)
def test_bad_values_name_their_flag(argv, flag):
    with pytest.raises(ConfigError, match=flag):
        _config(*argv)


def test_unknown_policy_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit):
        _config("--quality-filter", "drop")
    assert "--quality-filter" in capsys.readouterr().err
