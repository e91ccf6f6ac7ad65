"""Recommendations that fit the model in hand, with reasons that match their values, and a memory estimate whose
parts add up to its total."""

from __future__ import annotations

import pytest

from engine.train import recommend


def test_a_small_model_gets_full_fine_tuning_or_a_wide_lora_and_more_epochs(demo_model):
    facts = recommend.model_facts(str(demo_model))
    assert 0 < facts.params < recommend.SMALL_MODEL_PARAMS
    technique, why = recommend.recommend_technique(facts)
    assert technique == "full" and "cheap to train fully" in why
    rec = recommend.recommend_hyperparameters(facts, "lora", 480, 300)
    assert rec["lora_r"][0] == 32 and rec["lora_alpha"][0] == 64 and rec["target_modules"][0] == ["all-linear"]
    assert rec["num_train_epochs"][0] == 8.0 and "small model" in rec["num_train_epochs"][1]


def test_a_7b_model_keeps_the_seed_lora_settings():
    facts = recommend.model_facts("mistralai/Mistral-7B-Instruct-v0.3")
    assert facts.source == "catalog" and facts.params > 7e9
    assert recommend.recommend_technique(facts)[0] == "lora"
    rec = recommend.recommend_hyperparameters(facts, "lora", 5000, 700)
    assert (rec["lora_r"][0], rec["lora_alpha"][0], rec["target_modules"][0]) == (8, 16, ["q_proj", "v_proj"])
    assert rec["learning_rate"][0] == 2e-4 and rec["num_train_epochs"][0] == 2.0


@pytest.mark.parametrize("p99,context,expected", [(300, 4096, 320), (40, 4096, 64), (129, 4096, 192),
                                                   (9000, 8192, 8192)])
def test_max_length_is_the_99th_percentile_rounded_up_to_64(p99, context, expected):
    facts = recommend.ModelFacts("m", 1e9, context, 2048, 16, None, None, "catalog")
    value, why = recommend.recommend_hyperparameters(facts, "lora", 1000, p99)["max_length"]
    assert value == expected
    if expected == context and p99 > context:
        assert "the model's context" in why and "will be cut" in why
    else:
        assert f"({p99} tokens at the 99th percentile" in why and "not cut" in why


def test_lora_targets_come_from_the_models_own_module_names(tmp_path):
    """A fused query-key-value projection (Phi-3's qkv_proj) is what LoRA targets there; a Llama-style model keeps
    q_proj and v_proj."""
    import json
    import struct

    def folder(names: list[str]):
        path = tmp_path / names[0].split(".")[-2]
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"hidden_size": 8, "num_hidden_layers": 1}))
        header = json.dumps({n: {"dtype": "F32", "shape": [8, 8], "data_offsets": [0, 256]} for n in names}).encode()
        (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(256))
        return recommend.model_facts(str(path))

    phi = folder(["model.layers.0.self_attn.qkv_proj.weight", "model.layers.0.self_attn.o_proj.weight",
                  "model.layers.0.mlp.gate_up_proj.weight"])
    assert recommend.attention_targets(phi)[0] == ["qkv_proj"]
    llama = folder(["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight"])
    assert recommend.attention_targets(llama)[0] == ["q_proj", "v_proj"]


def test_the_memory_estimate_parts_add_up_to_the_total():
    facts = recommend.model_facts("meta-llama/Llama-3.1-8B-Instruct")
    for technique in ("lora", "qlora", "full", "prompt_tuning"):
        est = recommend.memory_estimate(facts, technique, 4, 1024)
        parts = sum(est[k] for k in ("weights", "adapters", "optimizer", "activations", "overhead"))
        assert est["total"] == pytest.approx(parts, abs=1e-9), technique
        assert est["overhead"] > 0.5
