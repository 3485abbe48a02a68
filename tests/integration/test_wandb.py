"""W&B tracking end to end: a tiny offline run read back from its .wandb file, disabled mode, and W&B
failures that must not stop training. No network: offline mode only, W&B's own dirs under tmp."""

from __future__ import annotations

import json
import logging
import struct
import zlib
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.experiment import load_config
from harness.paths import PROJECT_ROOT
from harness.runs.run import train
from harness.runs.tracking import api_key_configured, run_name, wandb_mode
from harness.runs.wandb_reader import BLOCK_SIZE, find_run_files, iter_log_records, read_run

PRESET = PROJECT_ROOT / "experiments" / "bahdanau2015_synthetic.yaml"
FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # 40 hex characters, the shape of a real key
TINY = {
    "data.synthetic.train_size": 200,
    "data.synthetic.test_size": 40,
    "data.synthetic.max_len": 10,
    "model.hidden_size": 16,
    "model.emb_size": 16,
    "train.max_steps": 40,
    "train.val_every": 20,
    "train.log_every": 10,
    "train.threads": 1,
}
SMALLER = {
    **TINY,
    "data.synthetic.train_size": 60,
    "data.synthetic.test_size": 10,
    "train.max_steps": 10,
    "train.val_every": 10,
}


def _isolate_wandb(mp: pytest.MonkeyPatch, home: Path) -> None:
    """No key, no netrc, no env overrides; W&B's config/cache/data dirs under tmp."""
    for var in (
        "WANDB_API_KEY",
        "WANDB_MODE",
        "WANDB_PROJECT",
        "WANDB_ENTITY",
        "WANDB_BASE_URL",
        "WANDB_IDENTITY_TOKEN_FILE",
        "WANDB_DIR",
        "WANDB_RUN_ID",
        "WANDB_RESUME",
    ):
        mp.delenv(var, raising=False)
    mp.setenv("NETRC", str(home / "netrc-absent"))
    for var, sub in (
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_DATA_DIR", "data"),
    ):
        mp.setenv(var, str(home / sub))


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    _isolate_wandb(monkeypatch, tmp_path)
    return monkeypatch


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """One tiny sweep-trial-like run in offline mode, with a (fake) API key in the environment."""
    tmp = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as mp:
        _isolate_wandb(mp, tmp)
        mp.setenv("WANDB_API_KEY", FAKE_KEY)
        cfg = load_config(
            PRESET,
            {
                **TINY,
                "tracking.wandb.mode": "offline",
                "tracking.wandb.group": "study-x",
                "tracking.wandb.job_type": "trial",
            },
        )
        trial = {"trial": 3, "study": "study-x", "model.score": "additive", "seed": 1}  # harness.study.sweep's form
        result = train(cfg, tmp / "run", progress=False, trial_info=trial)
    return result.run_dir, json.loads((result.run_dir / "metrics.json").read_text()), read_run(result.run_dir)


# ------------------------------------------------------------------------------------------ offline run
def test_offline_run_lands_in_run_dir(offline_run):
    run_dir, _, run = offline_run
    assert run.path.is_relative_to(run_dir / "wandb")
    assert run.path.parent.name.startswith("offline-run-")
    assert run.exit_code == 0
    assert run.name == "bahdanau-additive-s1"
    assert run.project == "attention-harness"
    assert (run.group, run.job_type) == ("study-x", "trial")


def test_offline_run_config(offline_run):
    _, metrics, run = offline_run
    c = run.config
    assert c["model.arch"] == "bahdanau" and c["model.score"] == "additive" and c["seed"] == 1
    assert c["train.max_steps"] == 40 and c["data.name"] == "synthetic"
    assert c["params"] == metrics["params"]
    assert c["data.sizes.train"] == 200 and c["data.sizes.test"] == 40
    assert c["versions.torch"] and c["versions.wandb"] and "git_commit" in c
    assert c["trial.number"] == 3 and c["trial.study"] == "study-x"
    assert c["trial.params.model.score"] == "additive" and c["trial.params.seed"] == 1


def test_offline_run_history(offline_run):
    _, _, run = offline_run
    train_loss = run.series("train_loss")
    assert len(train_loss) == 40 // 10  # train.max_steps / train.log_every
    assert all(v > 0 for _, v in train_loss)
    steps = [row["trainer/global_step"] for row in run.history if "train_loss" in row]
    assert steps == [9, 19, 29, 39]
    for key in ("lr", "grad_norm", "tokens_per_sec"):
        assert run.series(key), key
    for key in ("val_loss", "val_ppl", "val_bleu"):
        assert len(run.series(key)) == 40 // 20, key  # one point per validation


def test_offline_run_summary_is_metrics_json(offline_run):
    _, metrics, run = offline_run
    s = run.summary
    for key in (
        "bleu",
        "chrf",
        "sacrebleu_signature",
        "chrf_signature",
        "aer",
        "alignment_precision",
        "alignment_recall",
        "attention_entropy",
        "decode_sentences_per_sec",
        "train_tokens_per_sec",
    ):
        assert s[key] == metrics[key], key
    assert "length_drop" in s and s["length_drop"] == metrics["length_drop"]


def test_offline_run_tables_and_images(offline_run):
    _, metrics, run = offline_run
    by_length = run.summary["by_length"]
    assert by_length["_type"] == "table-file"
    table = json.loads((run.files_dir / by_length["path"]).read_text())
    assert table["columns"][:2] == ["bucket", "lo"]
    assert [row[0] for row in table["data"]] == [r["bucket"] for r in metrics["by_length"]]
    assert run.summary["by_length_bleu_table"]["_type"] == "table-file"  # wandb.plot.line's data
    samples = json.loads((run.files_dir / run.summary["samples"]["path"]).read_text())
    assert samples["columns"] == ["id", "source", "reference", "hypothesis"]
    assert len(samples["data"]) == 20
    hyps = (offline_run[0] / "test.hyp").read_text().splitlines()
    assert [row[3] for row in samples["data"]] == hyps[:20]
    images = run.media("images/**/*.png")
    assert len(images) == 3
    assert run.summary["attention/test_0"]["_type"] == "image-file"
    assert (run.files_dir / run.summary["attention/test_0"]["path"]).is_file()


def test_api_key_never_saved(offline_run):
    run_dir = offline_run[0]
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


# ------------------------------------------------------------------------------------------ modes
def test_disabled_writes_no_wandb_dir(no_wandb_env, tmp_path):
    cfg = load_config(PRESET, {**SMALLER, "tracking.wandb.mode": "disabled"})
    result = train(cfg, tmp_path / "run", progress=False)
    assert (result.run_dir / "metrics.json").is_file()
    assert not (result.run_dir / "wandb").exists()
    assert find_run_files(result.run_dir) == []
    with pytest.raises(HarnessError, match="no run-"):
        read_run(result.run_dir)


def test_online_without_key_falls_back_to_offline(no_wandb_env, caplog):
    cfg = load_config(PRESET, {"tracking.wandb.mode": "online"})
    assert not api_key_configured()
    with caplog.at_level(logging.WARNING, logger="harness.runs.tracking"):
        assert wandb_mode(cfg) == "offline"
    assert "no API key" in caplog.text
    no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    assert api_key_configured() and wandb_mode(cfg) == "online"


def test_netrc_entry_counts_as_key(no_wandb_env, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    netrc.chmod(0o600)
    no_wandb_env.setenv("NETRC", str(netrc))
    assert api_key_configured()


def test_env_mode_and_name(no_wandb_env):
    cfg = load_config(PRESET, {"model.arch": "luong", "model.score": "general", "seed": 1})
    assert run_name(cfg) == "luong-general-s1"
    assert run_name(load_config(PRESET, {"tracking.wandb.name": "mine"})) == "mine"
    no_wandb_env.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(cfg) == "disabled"


def test_project_and_entity_from_env(no_wandb_env):
    from harness.runs.tracking import _project_entity

    default = load_config(PRESET).tracking.wandb
    assert _project_entity(default) == ("attention-harness", None)
    no_wandb_env.setenv("WANDB_PROJECT", "from-env")
    no_wandb_env.setenv("WANDB_ENTITY", "team")
    assert _project_entity(default) == ("from-env", "team")
    explicit = load_config(PRESET, {"tracking.wandb.project": "p", "tracking.wandb.entity": "e"}).tracking.wandb
    assert _project_entity(explicit) == ("p", "e")  # the config, when set, wins over the environment


# ------------------------------------------------------------------------------------------ failures
def test_init_failure_does_not_stop_training(no_wandb_env, tmp_path, caplog):
    import wandb

    def broken_init(*args, **kwargs):
        raise wandb.errors.CommError("service unreachable")

    no_wandb_env.setattr(wandb, "init", broken_init)
    cfg = load_config(PRESET, {**SMALLER, "tracking.wandb.mode": "offline"})
    with caplog.at_level(logging.WARNING, logger="harness.runs.tracking"):
        result = train(cfg, tmp_path / "run", progress=False)
    assert (result.run_dir / "metrics.json").is_file()
    warnings = [r for r in caplog.records if r.name == "harness.runs.tracking"]
    assert len(warnings) == 1 and "service unreachable" in warnings[0].getMessage()


def test_online_start_failure_falls_back_to_offline(no_wandb_env, tmp_path, caplog):
    import wandb

    real_init = wandb.init

    def init_without_server(*args, **kwargs):
        if kwargs.get("mode") == "online":
            raise wandb.errors.CommError("api.wandb.ai: connection refused")
        return real_init(*args, **kwargs)

    no_wandb_env.setattr(wandb, "init", init_without_server)
    no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    cfg = load_config(PRESET, {**SMALLER, "tracking.wandb.mode": "online"})
    with caplog.at_level(logging.WARNING, logger="harness.runs.tracking"):
        result = train(cfg, tmp_path / "run", progress=False)
    assert "connection refused" in caplog.text
    run = read_run(result.run_dir)
    assert run.path.parent.name.startswith("offline-run-") and run.exit_code == 0
    assert run.summary["bleu"] == json.loads((result.run_dir / "metrics.json").read_text())["bleu"]


def test_log_failure_mid_training_warns_once(no_wandb_env, tmp_path, caplog):
    from wandb.sdk.wandb_run import Run

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    no_wandb_env.setattr(Run, "log", full_disk)
    cfg = load_config(
        PRESET, {**SMALLER, "train.max_steps": 20, "train.log_every": 5, "tracking.wandb.mode": "offline"}
    )
    with caplog.at_level(logging.WARNING, logger="harness.runs.tracking"):
        result = train(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 20
    warnings = [r.getMessage() for r in caplog.records if r.name == "harness.runs.tracking"]
    assert len(warnings) == 1 and "No space left" in warnings[0]
    assert read_run(result.run_dir).exit_code == 0  # the run is still closed


# ------------------------------------------------------------------------------------------ log format
def _log_file(records: list[bytes]) -> bytes:
    """A minimal LevelDB-log writer (the format wandb-core writes), to test the reader's block handling."""
    out = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0))
    for data in records:
        first = True
        while True:
            left = BLOCK_SIZE - len(out) % BLOCK_SIZE
            if left < 7:
                out += b"\0" * left
                continue
            chunk, data = data[: left - 7], data[left - 7 :]
            kind = (1 if not data else 2) if first else (4 if not data else 3)
            out += struct.pack("<IHB", zlib.crc32(chunk, zlib.crc32(bytes([kind]))), len(chunk), kind) + chunk
            first = False
            if not data:
                break
    return bytes(out)


def test_log_records_span_blocks():
    records = [b"a" * 10, b"b" * (BLOCK_SIZE - 30), b"c" * (3 * BLOCK_SIZE), b"", b"d" * 5]
    assert list(iter_log_records(_log_file(records))) == records


def test_log_truncated_tail_and_corruption():
    data = _log_file([b"x" * 100, b"y" * 100])
    # an interrupted writer: the last record is dropped
    assert list(iter_log_records(data[:-10])) == [b"x" * 100]
    corrupt = bytearray(data)
    corrupt[20] ^= 0xFF
    with pytest.raises(HarnessError, match="checksum"):
        list(iter_log_records(bytes(corrupt)))
    with pytest.raises(HarnessError, match="not a W&B"):
        list(iter_log_records(b"PK\x03\x04" + data[4:]))


def test_resume_continues_the_same_wandb_run(no_wandb_env, tmp_path):
    """--resume logs into the run it continues (same W&B id: `wandb sync` merges the two offline folders)
    instead of starting a second run; the resumed part's history starts after the checkpoint's step."""
    over = {**SMALLER, "tracking.wandb.mode": "offline", "train.log_every": 5}
    first = train(load_config(PRESET, over), tmp_path / "run", progress=False)
    partial = tmp_path / "run.partial"  # as left by a SIGKILL after the step-10 checkpoint
    first.run_dir.rename(partial)
    (partial / "INCOMPLETE").write_text("")
    again = train(load_config(PRESET, {**over, "train.max_steps": 20}), tmp_path / "run", resume=True, progress=False)
    files = find_run_files(again.run_dir)
    assert len(files) == 2 and files[0].parent != files[1].parent
    assert files[0].name == files[1].name  # run-<id>.wandb: one W&B run
    before, after = read_run(files[0]), read_run(files[1])
    assert after.run_id == before.run_id and after.exit_code == 0
    assert [s for s, _ in after.series("train_loss")] and min(v for _, v in after.series("trainer/global_step")) >= 10
