"""Config system: defaults, overrides, one-line errors naming file/key/expectation, suggestions."""

import pytest

from harness.config import all_keys, parse_overrides, to_dict
from harness.errors import HarnessError
from harness.experiment import load_config

PUBLIC = [
    "model.arch",
    "model.score",
    "data.name",
    "train.max_steps",
    "train.batch_size",
    "decode.beam",
    "seed",
    "tracking.wandb.mode",
]


def test_public_keys_exist_and_defaults_validate():
    keys = all_keys()
    for k in PUBLIC:
        assert k in keys
    cfg = load_config()
    assert cfg.tracking.wandb.mode == "offline"


def test_overrides_are_typed():
    cfg = load_config(
        "experiments/bahdanau2015_synthetic.yaml",
        [
            "model.score=dot",
            "train.max_steps=7",
            "train.lr=0.5",
            "model.reverse_source=true",
            "eval.length_buckets=[5,10]",
        ],
    )
    assert cfg.model.score == "dot" and cfg.train.max_steps == 7 and cfg.train.lr == 0.5
    assert cfg.model.reverse_source is True and cfg.eval.length_buckets == [5, 10]
    assert parse_overrides(["a.b=1"]) == {"a.b": 1}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model.scor=dot"], "did you mean 'model.score'"),
        (["train.max_step=3"], "did you mean 'train.max_steps'"),
        (["train.batch_size=abc"], "train.batch_size: expected an integer"),
        (["train.batch_size=0"], "train.batch_size: expected a value >= 1"),
        (["model.dropout=1.0"], "model.dropout: expected a value < 1"),
        (["decode.beam=0"], "decode.beam: expected a value >= 1"),
        (["model.score=dott"], "did you mean 'dot'"),
        (["model.arch=bahdanu"], "did you mean 'bahdanau'"),
        (["model.arch=seq2seq", "model.score=dot"], "does not apply to model.arch 'seq2seq'"),
        (["model.arch=bahdanau", "model.attention_type=local-p"], "does not apply"),
        (["data.tokenizer=chars"], "not one of word, sentencepiece"),
        (["noequals"], "expected key=value"),
    ],
)
def test_override_errors(overrides, expected):
    with pytest.raises(HarnessError) as e:
        load_config("experiments/bahdanau2015_synthetic.yaml", overrides)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  arch: [unclosed\n")
    with pytest.raises(HarnessError, match=r"bad.yaml:.*line \d+.*YAML syntax error"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model:\n  hiden_size: 3\n")
    with pytest.raises(
        HarnessError,
        match=r"unknown.yaml: unknown config key 'model.hiden_size' \(did you mean 'model.hidden_size'\?\)",
    ):
        load_config(unknown)
    with pytest.raises(HarnessError, match="file not found"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(HarnessError, match="YAML"):
        load_config(evil)


def test_round_trip_resolved_config():
    cfg = load_config("experiments/luong2015_synthetic.yaml")
    from harness.experiment import from_dict

    assert from_dict(to_dict(cfg)) == cfg


def test_the_stopping_rule_monitors_validation_keys():
    """config.py sits below metrics/ and cannot import its key names: its choices must be keys of MODE."""
    import dataclasses

    from harness.config import TrainConfig
    from harness.metrics.keys import MODE

    (field,) = [f for f in dataclasses.fields(TrainConfig) if f.name == "early_stopping_metric"]
    assert set(field.metadata["choices"]) <= set(MODE) and field.default in MODE
