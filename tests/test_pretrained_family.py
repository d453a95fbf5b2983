"""The pretrained-encoder ("Conformer") family in the pipeline: model.encoders builds each
modality's encoder from a config (validated), a run trains and reloads through the run cache, and
the benchmarks study groups its dataset entries into Figure 4's families."""
import pytest
import torch

from mcrlib.config import ConfigError, ModelConfig, RunConfig, from_dict
from mcrlib.data import load_dataset
from mcrlib.models import ConformerHead, SpeechConformerEncoder, build_encoder, build_model
from mcrlib.models.pretrained import load_backbone
from mcrlib.runs import load_result, run
from mcrlib.studies.benchmarks import load_study

TINY_SPEECH = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
               "conv_dim": [8, 8], "conv_kernel": [3, 3], "conv_stride": [2, 2], "num_conv_pos_embeddings": 4,
               "num_conv_pos_embedding_groups": 2, "layerdrop": 0.0, "mask_time_prob": 0.0}
TINY_HEAD = {"bottleneck": 8, "d_model": 16, "n_layers": 2, "n_heads": 2, "conv_kernel": 3}
SPEECH = {"kind": "speech_conformer", "backbone": "wav2vec2", "random_config": TINY_SPEECH, "keep_layers": 2,
          "head": TINY_HEAD}
DATA = {"name": "synthetic", "params": {"latent_dim": 4, "input_dim": 48, "n_train": 64, "n_val": 64, "n_test": 64}}


def test_encoders_config_names_a_kind_and_its_arguments():
    with pytest.raises(ConfigError, match=r"model.encoders.audio=.*expected \{kind: one of \['speech_conformer', "
                                          r"'video_conformer', 'conformer'\]"):
        from_dict(ModelConfig, {"encoders": {"audio": {"kind": "wav2vec"}}}, "model")
    cfg = from_dict(ModelConfig, {"encoders": {"x1": {**SPEECH, "layers": 3}}}, "model")
    with pytest.raises(ConfigError, match=r"unknown arguments \['layers'\] for kind 'speech_conformer'; allowed: "
                                          r"\['backbone', 'checkpoint', 'random_config', 'keep_layers'"):
        build_encoder(cfg, torch.zeros(48), "x1")
    with pytest.raises(ConfigError, match=r"kind 'speech_conformer' reads samples of rank 1, but modality 'x1' has "
                                          r"samples of shape \(3, 8, 8\)"):
        build_encoder(from_dict(ModelConfig, {"encoders": {"x1": SPEECH}}), torch.zeros(3, 8, 8), "x1")


def test_each_kind_builds_its_encoder_and_other_modalities_keep_their_family():
    cfg = from_dict(ModelConfig, {"encoders": {"audio": SPEECH, "faces": {"kind": "conformer", **TINY_HEAD}}})
    assert isinstance(build_encoder(cfg, torch.zeros(400), "audio"), SpeechConformerEncoder)
    faces = build_encoder(cfg, torch.zeros(7, 12), "faces", "sequence")
    assert isinstance(faces, ConformerHead) and faces(torch.randn(2, 7, 12)).shape == (2, 16)
    assert not isinstance(build_encoder(cfg, torch.zeros(7, 12), "text", "sequence"), ConformerHead)
    with pytest.raises(ConfigError, match="raw waveforms .* set model.encoders.audio"):
        build_encoder(ModelConfig(), torch.zeros(400), "audio", "waveform")


def test_a_pretrained_family_run_trains_and_reloads_from_the_cache(tmp_path):
    config = from_dict(RunConfig, {"data": DATA, "model": {"latent_dim": 8, "encoders": {
        "x1": SPEECH, "x2": {**SPEECH, "backbone": "hubert"}}}, "train": {"max_epochs": 2, "batch_size": 16,
        "progress": False}, "method": {"name": "mcr", "params": {"copies": 4, "lambda_ceb": 1.0}}})
    first = run(config, tmp_path)
    again = load_result(first.path)
    assert again.metrics == first.metrics and 0 <= first.metrics["test_acc_fused"] <= 1
    # the saved weights rebuild from the run's config alone: the same encoders, every tensor in place
    data = load_dataset("synthetic", DATA["params"])
    model = build_model(config.model, data)
    model.load_state_dict(again.model_state())
    assert isinstance(model.encoders["x2"].backbone, type(load_backbone("hubert", random_config=TINY_SPEECH)))
    other = from_dict(RunConfig, {**config.__dict__, "model": {"latent_dim": 8, "encoders": {
        "x1": SPEECH, "x2": {**SPEECH, "backbone": "hubert", "keep_layers": 1}}}})
    assert run(other, tmp_path).path != first.path      # the encoders are part of the run key


def test_figure4_families_group_the_dataset_entries_in_config_order():
    study = load_study({"datasets": {"a": DATA, "b (tiny)": {**DATA, "family": "conformer-tiny"},
                                     "c": {**DATA, "family": "ResNet-18"}},
                        "methods": ["ensemble", "joint"], "seeds": [0]})
    assert study.families() == {"ResNet-18": ["a", "c"], "conformer-tiny": ["b (tiny)"]}
    assert study.run_config("joint", "a", 0) == study.run_config("joint", "b (tiny)", 0)  # a label, not a setting


def test_mcr_refuses_latents_of_unequal_width_with_what_to_change(tmp_path):
    config = from_dict(RunConfig, {"data": DATA, "model": {"latent_dim": 8, "encoders": {"x1": SPEECH}},
                                   "train": {"max_epochs": 2, "batch_size": 16, "progress": False},
                                   "method": {"name": "mcr", "params": {"copies": 4}}})
    with pytest.raises(ConfigError, match=r"widths must be equal, got \{'x1': 16, 'x2': 8\}.*lambda_con: 0"):
        run(config, tmp_path)
