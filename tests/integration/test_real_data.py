"""Real data end to end (skips without ../shared/data): Hansards en-fr with its 447 human gold alignments."""

import json

import pytest

from harness.data.datamodule import prepare
from harness.experiment import load_config
from harness.runs.run import train

from ..conftest import needs_data

HANSARDS = [
    "data.name=hansards_enfr",
    "data.src_lang=en",
    "data.tgt_lang=fr",
    "data.train_limit=3000",
    "data.max_len=40",
    "data.vocab_min_freq=2",
    "model.emb_size=32",
    "model.hidden_size=32",
    "train.max_steps=200",
    "train.val_every=200",
    "train.batch_size=32",
    "train.val_bleu_limit=37",
    "tracking.wandb.mode=disabled",
    "train.threads=1",
]


@needs_data("hansards_enfr")
def test_gold_tokenization_matches_the_gold_indices():
    cfg = load_config("experiments/bahdanau2015_synthetic.yaml", HANSARDS)
    data = prepare(cfg)
    test = data.splits["test"]
    assert len(test.src_tokens) == 447 and len(test.raw.gold) == 447
    for src, tgt, gold in zip(test.src_tokens, test.tgt_tokens, test.raw.gold):
        # word tokenization of the pre-tokenized test text = the gold alignment's word positions
        assert all(0 <= s < len(src) and 0 <= t < len(tgt) for s, t in gold.possible)
    # the gold links point at the right words: "le" / "the" style anchors hold on the first sentences
    firsts = [(test.src_tokens[i], test.tgt_tokens[i], sorted(test.raw.gold[i].sure)) for i in range(3)]
    assert all(links for _, _, links in firsts)


@pytest.mark.slow
@needs_data("hansards_enfr")
def test_hansards_aer_end_to_end(tmp_path):
    cfg = load_config("experiments/luong2015_synthetic.yaml", HANSARDS)
    result = train(cfg, tmp_path / "hansards", progress=False)
    m = json.loads((result.run_dir / "metrics.json").read_text())
    assert m["gold_alignments"] == "hansards_enfr"
    assert 0 < m["aer"] < 1 and 0 <= m["alignment_precision"] <= 1 and 0 <= m["alignment_recall"] <= 1
    assert len((result.run_dir / "test.hyp").read_text().splitlines()) == 447
