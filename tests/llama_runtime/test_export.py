"""The peft -> GGUF LoRA export: permutation by hand, tensor names, metadata, refusals."""

import json

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from dagrpo.errors import UserError
from llama_runtime.export import effective_alpha, export_adapter, permute_rows, read_base_shape
from edge_agent.settings import default_model_path

BASE = default_model_path()
PREFIX = "base_model.model.model.layers"


def test_permute_rows_one_head_interleaves_the_two_rope_halves():
    w = np.arange(4).reshape(4, 1)
    assert permute_rows(w, 1)[:, 0].tolist() == [0, 2, 1, 3]


def test_permute_rows_per_head_and_keeps_columns():
    w = np.arange(16).reshape(8, 2)  # 2 heads x 4 rows, 2 columns (the LoRA rank)
    assert permute_rows(w, 2)[:, 0].tolist() == [0, 4, 2, 6, 8, 12, 10, 14]
    assert permute_rows(w, 2)[1].tolist() == [4, 5]


def test_permute_rows_refuses_rows_that_do_not_split_into_heads():
    with pytest.raises(ValueError):
        permute_rows(np.zeros((6, 2)), 2)


def test_effective_alpha_keeps_alpha_or_folds_rslora_into_it():
    assert effective_alpha({"r": 4, "lora_alpha": 8}) == 8.0
    # rslora scale alpha/sqrt(r) = 4 must equal llama.cpp's alpha'/r -> alpha' = 16
    assert effective_alpha({"r": 4, "lora_alpha": 8, "use_rslora": True}) == 16.0


def test_base_shape_of_smollm2():
    s = read_base_shape(BASE)
    assert (s.architecture, s.n_head, s.n_head_kv, s.n_layer) == ("llama", 9, 3, 30)


def _write_peft(path, tensors, **config):
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, **config}
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    save_file(tensors, str(path / "adapter_model.safetensors"))


def _tensors():
    rng = np.random.default_rng(0)
    return {
        f"{PREFIX}.0.self_attn.q_proj.lora_A.weight": rng.normal(size=(2, 576)).astype(np.float32),
        f"{PREFIX}.0.self_attn.q_proj.lora_B.weight": rng.normal(size=(576, 2)).astype(np.float32),
        f"{PREFIX}.0.self_attn.k_proj.lora_A.weight": rng.normal(size=(2, 576)).astype(np.float32),
        f"{PREFIX}.0.self_attn.k_proj.lora_B.weight": rng.normal(size=(192, 2)).astype(np.float32),
        f"{PREFIX}.1.mlp.down_proj.lora_A.weight": rng.normal(size=(2, 1536)).astype(np.float32),
        f"{PREFIX}.1.mlp.down_proj.lora_B.weight": rng.normal(size=(576, 2)).astype(np.float32),
    }


def _read(path):
    r = gguf.GGUFReader(str(path))
    fields = {k: r.fields[k].contents() for k in
              ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha")}
    # gguf-py reports ggml shapes (reversed); .data is back in torch layout
    return fields, {t.name: np.array(t.data) for t in r.tensors}


def test_export_names_metadata_and_qk_permutation(tmp_path):
    tensors = _tensors()
    _write_peft(tmp_path / "run" / "adapter", tensors)
    out = export_adapter(tmp_path / "run", BASE, tmp_path / "a.gguf")
    fields, got = _read(out)
    assert fields == {"general.architecture": "llama", "general.type": "adapter",
                      "adapter.type": "lora", "adapter.lora.alpha": 4.0}
    assert sorted(got) == sorted([
        "blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b",
        "blk.0.attn_k.weight.lora_a", "blk.0.attn_k.weight.lora_b",
        "blk.1.ffn_down.weight.lora_a", "blk.1.ffn_down.weight.lora_b"])
    key = f"{PREFIX}.0.self_attn"
    np.testing.assert_array_equal(got["blk.0.attn_q.weight.lora_a"], tensors[f"{key}.q_proj.lora_A.weight"])
    np.testing.assert_array_equal(got["blk.0.attn_q.weight.lora_b"],
                                  permute_rows(tensors[f"{key}.q_proj.lora_B.weight"], 9))
    np.testing.assert_array_equal(got["blk.0.attn_k.weight.lora_b"],
                                  permute_rows(tensors[f"{key}.k_proj.lora_B.weight"], 3))
    np.testing.assert_array_equal(got["blk.1.ffn_down.weight.lora_b"],
                                  tensors[f"{PREFIX}.1.mlp.down_proj.lora_B.weight"])


def test_export_without_permutation_copies_b(tmp_path):
    tensors = _tensors()
    _write_peft(tmp_path / "ad", tensors)
    _, got = _read(export_adapter(tmp_path / "ad", BASE, tmp_path / "a.gguf", permute_qk=False))
    np.testing.assert_array_equal(got["blk.0.attn_q.weight.lora_b"],
                                  tensors[f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"])


@pytest.mark.parametrize("config, tensors, match", [
    ({"use_dora": True}, None, "use_dora"),
    ({"rank_pattern": {"q_proj": 4}}, None, "rank_pattern"),
    ({}, {"base_model.model.lm_head.lora_A.weight": np.zeros((2, 576), np.float32)}, "lm_head"),
    ({}, {f"{PREFIX}.31.self_attn.q_proj.lora_A.weight": np.zeros((2, 576), np.float32)}, "30 layers"),
])
def test_export_refuses_what_llama_cpp_cannot_run(tmp_path, config, tensors, match):
    _write_peft(tmp_path / "ad", tensors or _tensors(), **config)
    with pytest.raises(UserError, match=match):
        export_adapter(tmp_path / "ad", BASE, tmp_path / "a.gguf")


def test_export_names_a_directory_without_adapter(tmp_path):
    with pytest.raises(UserError, match="neither a peft adapter"):
        export_adapter(tmp_path, BASE, tmp_path / "a.gguf")
