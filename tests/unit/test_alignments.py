"""Gold alignment readers and attention -> links -> AER, with hand-checked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.data.alignments import Alignment, parse_links, read_alignments, write_pharaoh
from harness.errors import HarnessError
from harness.metrics.alignment import (
    aer_paired_bootstrap,
    alignment_scores,
    attention_entropy,
    diagonal_links,
    links_from_attention,
    merge_subwords,
)
from harness.paths import data_root

# ---------------------------------------------------------------- parsing


def test_pharaoh_and_talp_give_the_same_links():
    pharaoh = parse_links("0-1 2?3", "pharaoh", src_first=True, where="x")
    talp = parse_links("1-2 3p4", "talp", src_first=True, where="x")
    assert pharaoh == talp == Alignment(sure={(0, 1)}, possible={(0, 1), (2, 3)})


def test_possible_always_includes_sure():
    assert Alignment(sure={(1, 1)}, possible=set()).possible == {(1, 1)}
    both = parse_links("1-1 1p1", "talp", src_first=True, where="x")  # listed twice: sure wins
    assert both.sure == both.possible == {(0, 0)}


def test_src_first_false_swaps_to_source_target():
    # en-fr file read for fr->en: the file's first index (English) is the target.
    alignment = parse_links("1-2 3p4", "talp", src_first=False, where="x")
    assert alignment.sure == {(1, 0)}
    assert alignment.possible == {(1, 0), (3, 2)}


def test_empty_line_is_a_sentence_without_links():
    assert parse_links("  ", "pharaoh", src_first=True, where="x") == Alignment(set(), set())


@pytest.mark.parametrize(
    ("line", "fmt", "expected"),
    [
        ("0-1 a-b", "pharaoh", "'a-b' is not pharaoh: expected 'i-j' (sure) or 'i?j'"),
        ("0-1 1p2", "pharaoh", "(the file looks like format talp)"),
        ("1-1 2?2", "talp", "(the file looks like format pharaoh)"),
        ("1-1 2:2", "talp", "expected 'i-j' (sure) or 'ipj' (possible) with 1-indexed integers"),
        ("1-1 -1-2", "talp", "'-1-2'"),
    ],
)
def test_malformed_link_names_where_and_token(line, fmt, expected):
    with pytest.raises(HarnessError) as error:
        parse_links(line, fmt, src_first=True, where="gold.talp line 12")
    assert str(error.value).startswith("gold.talp line 12: link ")
    assert expected in str(error.value)


def test_index_zero_in_talp_says_file_looks_0_indexed():
    with pytest.raises(HarnessError, match=r"^g\.talp line 3: .*'0-2'.*looks 0-indexed \(use format pharaoh\)"):
        parse_links("1-1 0-2", "talp", src_first=True, where="g.talp line 3")


def test_unknown_format():
    with pytest.raises(HarnessError, match="'moses' is not one of pharaoh, talp"):
        parse_links("0-0", "moses", src_first=True, where="x")


# ---------------------------------------------------------------- reading files


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_read_with_lengths_and_empty_lines(tmp_path):
    path = _write(tmp_path / "a.align", "0-0 1?1\n\n1-0 0-1\n")
    alignments = read_alignments(path, "pharaoh", True, src_lengths=[2, 1, 2], tgt_lengths=[2, 1, 2])
    assert alignments == [
        Alignment({(0, 0)}, {(0, 0), (1, 1)}),
        Alignment(set(), set()),
        Alignment({(1, 0), (0, 1)}, {(1, 0), (0, 1)}),
    ]


def test_bom_and_crlf_accepted(tmp_path):
    path = _write(tmp_path / "a.talp", b"\xef\xbb\xbf1-1 2p2\r\n\r\n2-1\r\n")
    alignments = read_alignments(path, "talp", True, src_lengths=[2, 1, 2], tgt_lengths=[2, 1, 1])
    assert alignments == [
        Alignment({(0, 0)}, {(0, 0), (1, 1)}),
        Alignment(set(), set()),
        Alignment({(1, 0)}, {(1, 0)}),
    ]


def test_wrong_line_count(tmp_path):
    path = _write(tmp_path / "a.align", "0-0\n0-0\n0-0\n")
    with pytest.raises(HarnessError, match=r"a\.align: has 3 lines, expected 2 \(one per sentence pair\)"):
        read_alignments(path, "pharaoh", True, src_lengths=[1, 1])


def test_trailing_empty_line_is_an_extra_sentence(tmp_path):
    path = _write(tmp_path / "a.align", "0-0\n0-0\n\n")
    with pytest.raises(HarnessError, match="has 3 lines, expected 2"):
        read_alignments(path, "pharaoh", True, tgt_lengths=[1, 1])


def test_out_of_range_names_file_line_link_and_length(tmp_path):
    path = _write(tmp_path / "a.align", "0-0 1-1\n0-0 1-3\n")
    with pytest.raises(HarnessError) as error:
        read_alignments(path, "pharaoh", True, src_lengths=[2, 2], tgt_lengths=[2, 3])
    assert str(error.value) == (
        f"{path} line 2: link '1-3' has target index 3 but the target sentence has 3 words "
        "(pharaoh is 0-indexed: valid 0..2)"
    )


def test_out_of_range_reported_as_written_when_swapped(tmp_path):
    path = _write(tmp_path / "a.talp", "1-1 5p2\n")  # first index = target side here
    with pytest.raises(HarnessError, match=r"line 1: link '5p2' has target index 5 .* has 4 words"):
        read_alignments(path, "talp", False, src_lengths=[2], tgt_lengths=[4], name="a.talp")


def test_1_indexed_file_declared_0_indexed_is_caught(tmp_path):
    path = _write(tmp_path / "one.align", "1-1 2-3\n1-2 2-1\n")  # 1-indexed, no index 0 anywhere
    with pytest.raises(HarnessError) as error:
        read_alignments(path, "pharaoh", True, src_lengths=[2, 2], tgt_lengths=[3, 2])
    message = str(error.value)
    assert message.startswith(f"{path} line 1: link '2-3'")
    assert "looks 1-indexed (use format talp)" in message


def test_0_indexed_file_declared_1_indexed_is_caught(tmp_path):
    path = _write(tmp_path / "zero.talp", "1-1\n0-1 1-0\n")
    with pytest.raises(HarnessError, match=r"zero\.talp line 2: link '0-1' .*looks 0-indexed"):
        read_alignments(path, "talp", True, src_lengths=[2, 2], tgt_lengths=[2, 2])


def test_index_equal_to_length_with_zeros_elsewhere_is_plain_out_of_range(tmp_path):
    path = _write(tmp_path / "a.align", "0-0\n2-1\n")
    with pytest.raises(HarnessError) as error:
        read_alignments(path, "pharaoh", True, src_lengths=[1, 2], tgt_lengths=[1, 2])
    assert "line 2: link '2-1' has source index 2" in str(error.value)
    assert "looks 1-indexed" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(HarnessError, match="nope.talp: no such alignment file"):
        read_alignments(tmp_path / "nope.talp", "talp", True)


def test_write_pharaoh_round_trip(tmp_path):
    alignments = [
        Alignment({(1, 0), (0, 0)}, {(2, 1)}),
        Alignment(set(), set()),
        Alignment(set(), {(0, 3)}),
    ]
    path = tmp_path / "out.align"
    write_pharaoh(alignments, path)
    assert path.read_text() == "0-0 1-0 2?1\n\n0?3\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.align"]  # no temp file left behind
    assert read_alignments(path, "pharaoh", True, src_lengths=[3, 1, 1], tgt_lengths=[2, 1, 4]) == alignments


# ---------------------------------------------------------------- attention -> links

# Rows: step predicting target word 0, step predicting word 1, end-of-sentence step. S = 3.
ATTN = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.1, 0.8],
        [0.2, 0.6, 0.2],
    ]
)


def test_argmax_uses_the_step_predicting_the_word():
    assert links_from_attention(ATTN, "argmax") == {(0, 0), (2, 1)}


def test_shift_att_uses_the_step_fed_the_word():
    # word 0 -> row 1 (argmax source 2); word 1 -> row 2, the EOS step (argmax source 1).
    assert links_from_attention(ATTN, "shift-att") == {(2, 0), (1, 1)}


def test_shift_att_with_lag_two_reads_two_rows_ahead():
    # RNNsearch / GNMT: the query of the step predicting word t has read only y_{t-2}; the step whose query has
    # read word t is t + 2, so the matrix carries one extra forced step (fed </s>) after the </s> step.
    attn = np.array(
        [
            [0.9, 0.05, 0.05],  # predicts word 0 (query has read nothing)
            [0.8, 0.1, 0.1],  # predicts word 1 (query has read <s>)
            [0.1, 0.8, 0.1],  # predicts </s> (query has read word 0)
            [0.1, 0.1, 0.8],  # extra step fed </s> (query has read word 1)
        ]
    )
    assert links_from_attention(attn, "shift-att", lag=2) == {(1, 0), (2, 1)}
    assert links_from_attention(attn, "shift-att", lag=1, target_words=2) == {(0, 0), (1, 1)}
    assert links_from_attention(attn, "argmax", target_words=2) == {(0, 0), (0, 1)}
    with pytest.raises(ValueError, match="needs 4 attention rows for 2 target words, got 3"):
        links_from_attention(attn[:3], "shift-att", lag=2, target_words=2)


def test_threshold_extraction_keeps_every_link_above_p():
    attn = np.array([[0.45, 0.45, 0.1], [0.05, 0.05, 0.9], [0.3, 0.3, 0.4]])
    assert links_from_attention(attn, "argmax", threshold=0.4) == {(0, 0), (1, 0), (2, 1)}
    assert links_from_attention(attn, "argmax", threshold=0.5) == {(2, 1)}  # word 0 gets no link
    assert links_from_attention(attn, "shift-att", threshold=0.5) == {(2, 0)}  # rows 1, 2


def test_diagonal_baseline_links_by_relative_position():
    assert diagonal_links(4, 4) == {(0, 0), (1, 1), (2, 2), (3, 3)}
    # |x| = 3, |y| = 6: t·3/6 = 0, 0.5, 1, 1.5, 2, 2.5 -> halves round up, the last clamped to word 2
    assert diagonal_links(3, 6) == {(0, 0), (1, 1), (1, 2), (2, 3), (2, 4), (2, 5)}
    assert diagonal_links(6, 2) == {(0, 0), (3, 1)}
    assert diagonal_links(0, 3) == set() and diagonal_links(3, 0) == set()
    gold = [Alignment({(0, 0), (1, 1)}, {(0, 0), (1, 1), (2, 1)})]
    # links {(0, 0), (2, 1)}: one sure hit, two possible hits -> AER = 1 - (1 + 2) / (2 + 2)
    assert alignment_scores([diagonal_links(3, 2)], gold)["aer"] == pytest.approx(0.25)


def test_links_from_attention_edge_cases():
    assert links_from_attention(np.array([[0.5, 0.5]]), "shift-att") == set()  # T = 0: EOS row only
    assert links_from_attention(np.array([[0.5, 0.5], [1.0, 0.0]])) == {(0, 0)}  # tie -> lowest index
    with pytest.raises(ValueError, match="unknown alignment method 'max'"):
        links_from_attention(ATTN, "max")


def test_merge_subwords_sums_pieces():
    # Source pieces "Groß@@ stadt ist" -> words [0, 0, 1]; target pieces "big city@@ ies" -> [0, 1, 1].
    attn = np.array(
        [
            [0.5, 0.3, 0.2],
            [0.1, 0.1, 0.8],
            [0.2, 0.2, 0.6],
            [0.3, 0.3, 0.4],  # end-of-sentence step
        ]
    )
    merged = merge_subwords(attn, [0, 0, 1], [0, 1, 1])
    np.testing.assert_allclose(merged, [[0.8, 0.2], [0.6, 1.4], [0.6, 0.4]])
    np.testing.assert_allclose(merge_subwords(attn, [0, 1, 2], [0, 1, 2]), attn)  # identity mapping
    with pytest.raises(ValueError, match="2 target piece->word entries for 3 target pieces"):
        merge_subwords(attn, [0, 0, 1], [0, 1])


# ---------------------------------------------------------------- AER

GOLD = [
    Alignment(sure={(0, 0), (1, 1)}, possible={(2, 1)}),
    Alignment(sure={(0, 0)}, possible=set()),
]


def test_aer_hand_example_one_sentence():
    # A = {(0,0), (2,1), (2,2)}: |A|=3, |S|=2, |A∩S|=1, |A∩P|=2.
    scores = alignment_scores([{(0, 0), (2, 1), (2, 2)}], GOLD[:1])
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["aer"] == pytest.approx(1 - (1 + 2) / (3 + 2))  # 0.4


def test_aer_sums_counts_over_the_corpus():
    # Sentence 2 adds |A|=1, |S|=1, no hits: totals |A|=4, |S|=3, |A∩S|=1, |A∩P|=2.
    scores = alignment_scores([{(0, 0), (2, 1), (2, 2)}, {(0, 1)}], GOLD)
    assert scores == pytest.approx({"aer": 1 - 3 / 7, "precision": 2 / 4, "recall": 1 / 3})
    # (not the mean of sentence AERs, which would be (0.4 + 1.0) / 2 = 0.7)


def test_gold_against_itself_has_aer_zero():
    for hyp in ([g.sure for g in GOLD], [g.possible for g in GOLD]):
        assert alignment_scores(hyp, GOLD) == {"aer": 0.0, "precision": 1.0, "recall": 1.0}


def test_aer_empty_sets():
    empty = Alignment(set(), set())
    assert alignment_scores([set()], [empty]) == {"aer": 0.0, "precision": 1.0, "recall": 1.0}
    assert alignment_scores([], []) == {"aer": 0.0, "precision": 1.0, "recall": 1.0}
    assert alignment_scores([set()], GOLD[1:]) == {"aer": 1.0, "precision": 1.0, "recall": 0.0}
    assert alignment_scores([{(0, 0)}], [empty]) == {"aer": 1.0, "precision": 0.0, "recall": 1.0}
    with pytest.raises(ValueError):
        alignment_scores([set()], GOLD)


# ---------------------------------------------------------------- AER significance
def _monotone_corpus(n: int = 60, words: int = 6):
    """n sentences of `words` words whose gold links word i to word i (sure), plus (i, i+1) possible."""
    gold = [Alignment({(i, i) for i in range(words)}, {(i + 1, i) for i in range(words - 1)}) for _ in range(n)]
    right = [{(i, i) for i in range(words)} for _ in range(n)]
    wrong = [{((i + 3) % words, i) for i in range(words)} for _ in range(n)]
    return gold, right, wrong


def test_aer_bootstrap_reports_the_corpus_aers_of_both_link_sets():
    gold, right, wrong = _monotone_corpus()
    mixed = right[:30] + wrong[30:]
    result = aer_paired_bootstrap(mixed, wrong, gold, n_samples=200)
    assert result["aer"] == pytest.approx(alignment_scores(mixed, gold)["aer"])
    assert result["baseline_aer"] == pytest.approx(alignment_scores(wrong, gold)["aer"])
    assert result["sentences"] == 60


def test_aer_bootstrap_separates_a_large_difference_and_not_a_one_sentence_one():
    gold, right, wrong = _monotone_corpus()
    assert aer_paired_bootstrap(right, wrong, gold, n_samples=500)["p_value"] < 0.01
    one_better = right[:1] + wrong[1:]  # better on 1 of 60 sentences: AER 0.98 vs 1.0, by chance as often as not
    result = aer_paired_bootstrap(one_better, wrong, gold, n_samples=500)
    assert result["aer"] < result["baseline_aer"] and result["p_value"] > 0.05


def test_aer_bootstrap_of_identical_links_is_p_one_and_is_seeded():
    gold, right, wrong = _monotone_corpus()
    assert aer_paired_bootstrap(wrong, [set(x) for x in wrong], gold)["p_value"] == 1.0
    half = right[:20] + wrong[20:]
    first, again = (aer_paired_bootstrap(half, wrong, gold, n_samples=300, seed=7) for _ in range(2))
    assert first == again and 0 < first["p_value"] <= 1
    with pytest.raises(ValueError):
        aer_paired_bootstrap(right[:3], wrong, gold)


# ---------------------------------------------------------------- entropy


@pytest.mark.filterwarnings("error")  # zero entries must not warn (log 0)
def test_attention_entropy():
    uniform = np.full((1, 4), 0.25)
    one_hot = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert attention_entropy([uniform]) == pytest.approx(math.log(4))
    assert attention_entropy([one_hot]) == 0.0
    assert attention_entropy([uniform, one_hot]) == pytest.approx(math.log(4) / 3)  # mean over 3 rows
    # local-p rows sum to less than 1 (the Gaussian of eq. 10): normalised first, so comparable with the others
    assert attention_entropy([0.6 * uniform]) == pytest.approx(math.log(4))
    assert attention_entropy([np.zeros((1, 3))]) == 0.0  # an empty source
    with pytest.raises(ValueError):
        attention_entropy([])


# ---------------------------------------------------------------- real gold sets (shared/data)


def _data_dir(folder: str):
    path = data_root() / folder
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} not found (set HARNESS_DATA_DIR)")
    return path


def _lengths(path) -> list[int]:
    return [len(line.split()) for line in path.read_text(encoding="utf-8").split("\n")[:-1]]


def _count(alignments):
    sure = sum(len(a.sure) for a in alignments)
    return sure, sum(len(a.possible) for a in alignments) - sure


@pytest.mark.data
def test_real_rwth_deen_gold():
    folder = _data_dir("rwth_deen_gold")
    de, en = _lengths(folder / "gold.de"), _lengths(folder / "gold.en")
    talp = read_alignments(folder / "gold.talp", "talp", src_first=True, src_lengths=de, tgt_lengths=en)
    assert len(talp) == 508
    assert _count(talp) == (9613, 921)  # README: 9,613 sure + 921 possible links
    pharaoh = read_alignments(folder / "gold.0idx.align", "pharaoh", True, src_lengths=de, tgt_lengths=en)
    assert pharaoh == talp
    # en->de direction: the German-first file with src_first=False gives the transposed links.
    flipped = read_alignments(folder / "gold.talp", "talp", src_first=False, src_lengths=en, tgt_lengths=de)
    assert [{(t, s) for s, t in a.sure} for a in flipped] == [a.sure for a in talp]


@pytest.mark.data
def test_real_rwth_talp_cannot_be_read_as_0_indexed(tmp_path):
    folder = _data_dir("rwth_deen_gold")
    de, en = _lengths(folder / "gold.de"), _lengths(folder / "gold.en")
    one_indexed = (folder / "gold.talp").read_text().replace("p", "?")  # pharaoh syntax, still 1-indexed
    path = _write(tmp_path / "gold.1idx.align", one_indexed)
    with pytest.raises(HarnessError, match=r"gold\.1idx\.align line \d+: .*looks 1-indexed"):
        read_alignments(path, "pharaoh", True, src_lengths=de, tgt_lengths=en)
    with pytest.raises(HarnessError, match=r"gold\.talp line 3: link '25p22' is not pharaoh.*looks like format talp"):
        read_alignments(folder / "gold.talp", "pharaoh", True, src_lengths=de, tgt_lengths=en)


@pytest.mark.data
def test_real_hansards_enfr_test_gold():
    folder = _data_dir("hansards_enfr")
    en, fr = _lengths(folder / "test.en"), _lengths(folder / "test.fr")
    gold = read_alignments(folder / "test.gold.talp", "talp", src_first=True, src_lengths=en, tgt_lengths=fr)
    assert len(gold) == 447
    assert _count(gold) == (4038, 13400)  # README: 4,038 sure + 13,400 possible links
