"""`harness list` shows every architecture, score function, preset and data set."""

from harness.cli import main


def test_list_shows_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in [
        "seq2seq",
        "seq2seq_attn",
        "bahdanau",
        "luong",
        "gnmt",
        "dot",
        "general",
        "additive",
        "location",
        "cosine",
        "scaled_dot",
        "none",
        "experiments/bahdanau2015_synthetic.yaml",
        "synthetic",
    ]:
        assert name in out, name
    assert "concat" in out  # the alias of additive
