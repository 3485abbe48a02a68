"""`harness bench --scaling` end to end at tiny shapes: one fresh worker process per point, the work each point
asks for is exactly what it decodes, the FLOP model grows with it, and the files are written."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from harness.bench.scaling import _point_config

from ..conftest import run_cli

TINY_MODEL = ["model.emb_size=8", "model.hidden_size=16", "model.enc_hidden_size=8", "model.maxout_size=8"]


@pytest.mark.slow
def test_scaling_measures_each_point_and_writes_json_md_png(tmp_path):
    out = tmp_path / "bench"
    r = run_cli(
        "bench",
        "--scaling",
        "src_len=4,8",
        "--scaling-base",
        "src_len=4",
        "batch=3",
        "vocab=20",
        *TINY_MODEL,
        "--steps",
        "2",
        "--warmup",
        "1",
        "--output",
        str(out),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("[scaling] src_len=") == 2  # the base point (src_len 4) is one of the two
    doc = json.loads((out / "scaling.json").read_text())
    rows = doc["axes"]["src_len"]
    assert [row["value"] for row in rows] == [4, 8]
    for row in rows:
        assert row["point"] == {"src_len": row["value"], "batch": 3, "vocab": 20, "hidden": 0}
        assert row["hidden_size"] == 16 and row["train_tokens_per_sec"] > 0 and row["peak_rss_mb"] > 0
        for label in ("greedy", "beam5"):  # </s> masked: every sentence decodes exactly |x| words, then </s>
            assert row["decode"][label]["mean_output_length"] == row["value"]
            assert row["decode"][label]["sentences_per_sec"] > 0
        assert row["matmul_limit_tokens_per_sec"] > 0
    assert rows[0]["params"] == rows[1]["params"]  # the same model at both lengths
    assert rows[1]["flops_per_token_forward"] > rows[0]["flops_per_token_forward"]  # attention grows with |x|
    md = (out / "scaling.md").read_text()
    assert "## source length (tokens)" in md and md.count("\n| 4 |") == 1 and md.count("\n| 8 |") == 1
    assert Image.open(out / "scaling.png").format == "PNG"


def test_scaling_refuses_unknown_axes_and_values(tmp_path):
    for args, msg in (
        (["--scaling", "length=4"], "expected one of src_len, batch, vocab, hidden"),
        (["--scaling", "batch=a"], "values must be integers"),
        (["--scaling", "src_len", "--scaling-base", "batch=4,8"], "expected one value, e.g. batch=32"),
        (["--scaling", "vocab=4,16"], "vocab 4: expected at least 8"),  # before any worker process starts
    ):
        r = run_cli("bench", *args, "--output", str(tmp_path / "x"))
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x").exists()


def test_hidden_axis_scales_the_presets_other_sizes_in_proportion():
    cfg = _point_config("bahdanau2015", {"src_len": 20, "batch": 64, "vocab": 8000, "hidden": 1024}, [])
    m = cfg.model  # the preset: hidden 512, encoder 256 per direction, maxout 256, embeddings 256
    assert (m.hidden_size, m.enc_hidden_size, m.maxout_size, m.emb_size) == (1024, 512, 512, 256)
    assert _point_config("bahdanau2015", {"hidden": 0}, []).model.hidden_size == 512
