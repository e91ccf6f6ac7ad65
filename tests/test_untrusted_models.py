"""Models users bring are untrusted input: a folder that asks to run its own code, pickle weights, or a chat template
that loops is refused with one sentence of ours before anything loads, and never hangs a run."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_studio, support_chats

from engine.data import chat_template
from engine.data.template_limits import TemplateRefused
from engine.train import launcher, model_safety

MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]


@pytest.fixture
def model_copy(demo_model, tmp_path):
    folder = tmp_path / "brought-model"
    shutil.copytree(demo_model, folder)
    return folder


def _set(folder, file: str, **values) -> None:
    path = folder / file
    data = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**data, **values}))


def test_a_model_asking_to_run_its_own_code_is_refused_before_loading(model_copy):
    _set(model_copy, "config.json", auto_map={"AutoModelForCausalLM": "modeling_evil.EvilModel"})
    (model_copy / "modeling_evil.py").write_text("import os\nos.system('touch /tmp/pwned')\n")
    why = launcher.model_available(str(model_copy))
    assert why is not None and "asks to run its own Python code ('auto_map' in config.json)" in why
    from engine.evaluate import generation

    with pytest.raises(model_safety.UntrustedModel, match="never runs code from a model folder"):
        generation.load(str(model_copy))


def test_pickle_weights_are_refused_in_favour_of_safetensors(model_copy):
    for weights in model_copy.glob("*.safetensors"):
        weights.rename(weights.with_name("pytorch_model.bin"))
    why = launcher.model_available(str(model_copy))
    assert why is not None and why.startswith("The model's weights are in PyTorch's pickle format (pytorch_model.bin)")
    assert "torch" not in why.lower().replace("pytorch", "")  # our sentence, not the library's


@pytest.mark.parametrize("template", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",  # 10^10 empty steps
    "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}",
    "{{ 'a' * 10**12 }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% for a in range(100000) %}{{ (messages|tojson) * 1000 }}{% endfor %}",  # 8 GB of output
])
def test_a_template_that_would_loop_or_blow_up_is_refused_quickly(template):
    with pytest.raises(TemplateRefused, match="the studio refuses it"):  # without the limits: hours, or all memory
        chat_template.render(template, MESSAGES)


def test_a_run_with_a_looping_template_is_refused_at_launch_not_stuck_at_step_0(model_copy, ws, tmp_path):
    _set(model_copy, "tokenizer_config.json",
         chat_template="{% for m in messages %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                       "{% endfor %}{{ m.content }}{% endfor %}")
    (model_copy / "chat_template.jinja").unlink(missing_ok=True)
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in support_chats(40)))
    proc = run_studio("train", "--model", model_copy, "--data", data, "--max-steps", "2", env_home=ws.root,
                      timeout=300)
    assert proc.returncode != 0
    assert "The chat template loops too much" in proc.stderr and "Traceback" not in proc.stderr
