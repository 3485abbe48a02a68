"""The one configuration every toolkit trains at, written in each toolkit's own config language.

Shared: Multi30k de→en, lowercased, Moses punctuation split (sacremoses, via this harness's tokenizer),
word vocabulary with minimum frequency 2 on the training side (each toolkit builds its own from the same
tokenized files); embedding 256; bidirectional GRU encoder, 256 per direction; GRU decoder 512;
additive (Bahdanau / MLP) attention; dropout 0.2; Adam, learning rate 1e-3, constant; gradient norm
clip 5; batches of 64 sentences; loss normalised by target tokens; no validation during training.

OpenNMT-py and JoeyNMT both run the Luong-style input-feeding decoder: s_t = GRU([E y_{t-1}; h̃_{t-1}],
s_{t-1}), attention from the new state s_t, h̃_t = tanh(W [c_t; s_t]), softmax(W_o h̃_t). This harness's
closest preset, experiments/bahdanau2015_multi30k.yaml, is the paper's RNNsearch instead: attention
from s_{i-1}, the context fed into the GRU (s_i = GRU([E y_{i-1}; c_i], s_{i-1})), a maxout deep output
(256 units) and s_0 = tanh(W_s h̄_1^←); no input feeding. Same sizes, slightly different matmuls.
"""

from __future__ import annotations

from pathlib import Path

HARNESS_PRESET = "experiments/bahdanau2015_multi30k.yaml"

# The harness runs twice: its own preset, and the preset turned into OpenNMT-py's network (opennmt_config below):
# `luong` with a bidirectional GRU encoder (256 per direction), a GRU decoder of 512 reading [E y_{t-1}; h̃_{t-1}]
# (input feeding), MLP (additive) attention from the new state, h̃_t = tanh(W[c_t; s_t]), the decoder started from
# the encoder's final states with both directions concatenated (no bridge). Same sizes, same matmuls: the
# parameter counts differ by the 512 biases of OpenNMT-py's linear_out (tests/unit/test_bench.py counts both).
NETWORKS = {
    "harness": ("RNNsearch: the bahdanau2015 preset", []),
    "harness-onmt": (
        "OpenNMT-py's RNN (luong, bi-GRU 2×256, GRU 512, input feeding, MLP attention)",
        [
            "model.arch=luong",
            "model.rnn_cell=gru",
            "model.enc_bidirectional=true",
            "model.score=additive",
            "model.attention_type=global",
            "model.input_feeding=true",
            "model.enc_layers=1",
            "model.dec_layers=1",
            "model.emb_size=256",
            "model.hidden_size=512",
            "model.enc_hidden_size=256",
        ],
    ),
}
# JoeyNMT 2.3.0's recurrent model (joeynmt_config below) is the same network with its bridge: the decoder starts
# from tanh(W [h̄_fwd; h̄_bwd] + b) (init_hidden "bridge"), attention from the new state like OpenNMT-py's (its
# RecurrentDecoder._forward_step). Parameters equal to its output layer's missing bias (tests/unit/test_bench.py).
NETWORKS["harness-joey"] = (
    "JoeyNMT's RNN (luong, bi-GRU 2×256, GRU 512, input feeding, MLP attention, bridge)",
    [*NETWORKS["harness-onmt"][1], "model.bridge=tanh"],
)
# OpenNMT-py's network again with the harness's two memory-for-speed flags (off by default; same function and
# gradients): the additive score's per-step tanh recomputed in backward, the output layer's cross-entropy 256 target
# tokens at a time. Its row beside `harness-onmt` says, in one run, what they save and cost.
NETWORKS["harness-onmt-lowmem"] = (
    "OpenNMT-py's RNN as harness-onmt, with model.recompute_attention and train.loss_chunk_rows=256",
    [*NETWORKS["harness-onmt"][1], "model.recompute_attention=true", "train.loss_chunk_rows=256"],
)


def log_every(steps: int) -> int:
    """Log training speed every 50 steps (at least 4 windows for short runs: the first is warm-up)."""
    return max(1, min(50, steps // 4))


def opennmt_config(data: Path, work: Path, steps: int, seed: int = 1) -> dict:
    """OpenNMT-py 3.5.1 YAML (onmt_build_vocab and onmt_train read the same file)."""
    return {
        "save_data": str(work / "data"),
        "src_vocab": str(work / "vocab.src"),
        "tgt_vocab": str(work / "vocab.tgt"),
        "src_words_min_frequency": 2,
        "tgt_words_min_frequency": 2,
        "overwrite": True,
        "data": {
            "corpus_1": {"path_src": str(data / "train.de"), "path_tgt": str(data / "train.en")},
            "valid": {"path_src": str(data / "val.de"), "path_tgt": str(data / "val.en")},
        },
        "save_model": str(work / "model"),
        "save_checkpoint_steps": steps,
        "train_steps": steps,
        "valid_steps": 10 * steps + 1000,  # never: no validation during training, as for the others
        "report_every": log_every(steps),
        "seed": seed,
        "encoder_type": "brnn",  # bidirectional: hidden_size / 2 = 256 per direction
        "decoder_type": "rnn",
        "rnn_type": "GRU",
        "layers": 1,
        "word_vec_size": 256,
        "hidden_size": 512,
        "global_attention": "mlp",
        "input_feed": 1,
        "dropout": [0.2],
        "optim": "adam",
        "learning_rate": 0.001,
        "max_grad_norm": 5.0,
        "batch_size": 64,
        "batch_type": "sents",
        "valid_batch_size": 64,
        "normalization": "tokens",
        "src_seq_length": 80,
        "tgt_seq_length": 80,
    }


def joeynmt_config(
    data: Path,
    work: Path,
    steps: int,
    seed: int = 1,
    beam: int = 1,
    load_model: Path | None = None,
    dev: Path | None = None,
) -> dict:
    """JoeyNMT 2.3.0 YAML, constant learning rate."""
    # word level: a whitespace split of the pre-tokenized, lowercased files
    side = {
        "level": "word",
        "lowercase": False,
        "max_length": 80,
        "voc_min_freq": 2,
        "tokenizer_cfg": {"pretokenizer": "none"},
    }
    testing = {
        "beam_size": beam,
        "batch_size": 64,
        "batch_type": "sentence",
        "max_output_length": 100,
        "eval_metrics": ["bleu"],
        "n_best": 1,
    }
    if load_model is not None:
        testing["load_model"] = str(load_model)
    return {
        "name": "bench-peers",
        "joeynmt_version": "2.3.0",
        "model_dir": str(work / "model"),
        "use_cuda": False,
        "fp16": False,
        "random_seed": seed,
        "data": {
            "train": str(data / "train"),
            "dev": str(dev or data / "val"),
            "test": str(data / "test"),
            "dataset_type": "plain",
            "src": {"lang": "de", **side},
            "trg": {"lang": "en", **side},
        },
        "testing": testing,
        "training": {
            "random_seed": seed,
            "optimizer": "adam",
            "learning_rate": 0.001,
            "learning_rate_min": 1.0e-8,
            # constant: 2.3.0 rejects "no scheduler" (build_scheduler raises on None) and `plateau` breaks on
            # torch 2.13, so an exponential decay with factor 1 (stepped once per epoch) keeps the rate fixed
            "scheduling": "exponential",
            "decrease_factor": 1.0,
            "clip_grad_norm": 5.0,
            "batch_size": 64,
            "batch_type": "sentence",
            "normalization": "tokens",
            "updates": steps,
            "epochs": 1000,
            "logging_freq": log_every(steps),
            "validation_freq": log_every(steps) * (10 * steps // log_every(steps) + 20),  # never
            "shuffle": True,
            "overwrite": True,
            "keep_best_ckpts": 1,
            "print_valid_sents": [],
        },
        "model": {
            "encoder": {
                "type": "recurrent",
                "rnn_type": "gru",
                "embeddings": {"embedding_dim": 256},
                "hidden_size": 256,
                "bidirectional": True,
                "dropout": 0.2,
                "num_layers": 1,
            },
            "decoder": {
                "type": "recurrent",
                "rnn_type": "gru",
                "embeddings": {"embedding_dim": 256},
                "hidden_size": 512,
                "attention": "bahdanau",
                "input_feeding": True,
                "init_hidden": "bridge",
                "dropout": 0.2,
                "hidden_dropout": 0.2,
                "num_layers": 1,
            },
        },
    }


def harness_overrides(steps: int, network: str = "harness") -> list[str]:
    """The harness side: the bahdanau2015 preset (as `network`, a key of NETWORKS) for exactly `steps` steps,
    validated once at the end."""
    return [
        *NETWORKS[network][1],
        f"train.max_steps={steps}",
        "train.max_epochs=-1",
        f"train.val_every={steps}",
        "train.val_bleu_limit=64",  # validation is not measured: keep the final one short
        "tracking.wandb.mode=disabled",
    ]
