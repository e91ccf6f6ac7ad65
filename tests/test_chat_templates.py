"""The answer-only loss on any chat template, and every field of the chat format used or refused.

Tokenizers are built offline (the demo's byte-level BPE plus each family's special tokens) and given real templates:
the ones TRL ships as copies of the families' own (trl/chat_templates: Qwen2.5, Llama 3.1, Gemma, Phi-3, Qwen3 and
Qwen2.5's training template with {% generation %} markers), SmolLM2's ChatML template (as its GGUF carries it) and
Mistral's [INST] template. For each, the tokens that carry loss must decode to exactly each assistant turn's content
followed by the template's end-of-turn token, over multi-turn records.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from engine.data.chat_template import ModelTemplate
from engine.data.loss_mask import encode_conversation, loss_text

TRL_TEMPLATES = Path(__import__("trl").__file__).parent / "chat_templates"
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>"
           "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
           "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
MISTRAL = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
           "{% set loop_messages = messages[1:] %}{% else %}{% set system = '' %}{% set loop_messages = messages %}"
           "{% endif %}{% for message in loop_messages %}{% if message['role'] == 'user' %}{% if loop.first and "
           "system %}{{ '[INST] ' + system + '\n\n' + message['content'] + ' [/INST]' }}{% else %}"
           "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% elif message['role'] == 'assistant' %}"
           "{{ message['content'] + eos_token }}{% else %}{{ raise_exception('Only user and assistant roles are "
           "supported!') }}{% endif %}{% endfor %}")

# family: (template, special tokens, eos, the end-of-turn token the loss must end with)
FAMILIES = {
    "smollm2_chatml": (SMOLLM2, ["<|im_start|>", "<|im_end|>"], "<|im_end|>", "<|im_end|>"),
    "qwen2_5": ((TRL_TEMPLATES / "qwen2_5.jinja").read_text(), ["<|im_start|>", "<|im_end|>"], "<|im_end|>",
                "<|im_end|>"),
    "llama3_1": ((TRL_TEMPLATES / "llama3_1.jinja").read_text(),
                 ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
                  "<|python_tag|>"], "<|eot_id|>", "<|eot_id|>"),
    "mistral_inst": (MISTRAL, ["<s>", "</s>"], "</s>", "</s>"),
    "gemma": ((TRL_TEMPLATES / "gemma.jinja").read_text(), ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
              "<eos>", "<end_of_turn>"),
    "phi3": ((TRL_TEMPLATES / "phi3.jinja").read_text(), ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>",
                                                          "<|endoftext|>"], "<|endoftext|>", "<|end|>"),
    "generation_markers": ((TRL_TEMPLATES / "qwen2_5_training.jinja").read_text(), ["<|im_start|>", "<|im_end|>"],
                           "<|im_end|>", "<|im_end|>"),
    "qwen3_drops_reasoning": ((TRL_TEMPLATES / "qwen3.jinja").read_text(),
                              ["<|im_start|>", "<|im_end|>", "<think>", "</think>"], "<|im_end|>", "<|im_end|>"),
}
BOS = {"llama3_1": "<|begin_of_text|>", "mistral_inst": "<s>", "gemma": "<bos>"}


@lru_cache(maxsize=1)
def _base_tokenizer_json() -> str:
    from engine.demo.model import train_tokenizer

    return train_tokenizer().to_str()


def family_tokenizer(family: str, folder: Path | None = None):
    """A transformers fast tokenizer of the family (demo BPE vocabulary, the family's special tokens and template)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    template, specials, eos, _ = FAMILIES[family]
    tok = Tokenizer.from_str(_base_tokenizer_json())
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=BOS.get(family),
                                   pad_token=eos)
    fast.chat_template = template
    if folder is not None:
        fast.save_pretrained(str(folder))
    return fast


def conversation(with_system: bool = True) -> list[dict]:
    msgs = [{"role": "user", "content": "Where is order 4411?"},
            {"role": "assistant", "content": "Order 4411 left the warehouse on Monday."},
            {"role": "user", "content": "And when will it arrive in Leeds?"},
            {"role": "assistant", "content": "Within three working days."}]
    if with_system:
        msgs.insert(0, {"role": "system", "content": "Be brief."})
    return msgs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loss_tokens_are_exactly_each_answer_and_its_end_of_turn(family):
    fast = family_tokenizer(family)
    template = ModelTemplate.from_transformers(fast)
    assert template.end_of_turn == FAMILIES[family][3]
    messages = conversation()
    encoded = encode_conversation(template, messages)
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    wanted = [a + template.end_of_turn for a in answers]
    if family == "qwen3_drops_reasoning":
        # the template drops earlier turns' reasoning, so it is not prefix-preserving once a turn has some
        messages[2]["reasoning_content"] = "The user wants the shipping date."
        encoded = encode_conversation(template, messages)
        assert encoded.method == "per_turn" and len(encoded.examples) == 2
        texts = [loss_text(template, e) for e in encoded.examples]
        assert all(len(t) == 1 for t in texts)
        # each turn's span is what the model writes after the generation prompt: its reasoning block, then the answer
        assert [t[0].endswith(w) for t, w in zip(texts, wanted)] == [True, True]
        assert "The user wants the shipping date." in texts[0][0]
        return
    assert encoded.method == "assistant_mask" and len(encoded.examples) == 1
    assert loss_text(template, encoded.examples[0]) == wanted
    if family == "generation_markers":
        # where the template marks the answers itself, transformers' mask covers ours; TRL's template also marks the
        # newlines around each turn, which the studio leaves out (content and end-of-turn only)
        marked = fast.apply_chat_template(messages, tokenize=True, return_dict=True,
                                          return_assistant_tokens_mask=True)["assistant_masks"]
        ours = encoded.examples[0].assistant_masks
        assert all(m for o, m in zip(ours, marked) if o)
        extra = [t for t, o, m in zip(encoded.examples[0].input_ids, ours, marked) if m and not o]
        assert extra and fast.decode(extra).strip() == ""
    # the tokens are the ones transformers' own apply_chat_template gives (same renderer, same tokenizer)
    folded = messages if template.system_role else conversation(False)
    if not template.system_role:
        folded[0] = {"role": "user", "content": "Be brief.\n\n" + folded[0]["content"]}
    assert encoded.examples[0].input_ids == fast.apply_chat_template(folded, tokenize=True,
                                                                     return_dict=True)["input_ids"]


def test_a_template_without_a_system_role_gets_it_folded_into_the_first_user_turn():
    template = ModelTemplate.from_transformers(family_tokenizer("gemma"))
    assert not template.system_role
    encoded = encode_conversation(template, conversation())
    text = template.tokenizer.decode(encoded.examples[0].input_ids, skip_special_tokens=False)
    assert "user\nBe brief.\n\nWhere is order 4411?" in text


def test_weight_zero_turns_stay_as_context_without_loss():
    template = ModelTemplate.from_transformers(family_tokenizer("smollm2_chatml"))
    messages = conversation()
    messages[2]["weight"] = 0
    encoded = encode_conversation(template, messages)
    assert loss_text(template, encoded.examples[0]) == ["Within three working days.<|im_end|>"]
    text = template.tokenizer.decode(encoded.examples[0].input_ids, skip_special_tokens=False)
    assert "Order 4411 left the warehouse on Monday." in text  # still in the context


def tool_record() -> tuple[list[dict], list[dict]]:
    tools = [{"type": "function", "function": {"name": "track_order", "description": "Where an order is",
                                               "parameters": {"type": "object",
                                                              "properties": {"order": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "Where is order 4411?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "track_order", "arguments": "{\"order\": \"4411\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"status\": \"in transit\"}"},
                {"role": "assistant", "content": "It is in transit."}]
    return messages, tools


def test_tool_calls_are_rendered_by_the_template_and_trained_as_assistant_output():
    template = ModelTemplate.from_transformers(family_tokenizer("qwen2_5"))
    assert template.renders_tools
    messages, tools = tool_record()
    encoded = encode_conversation(template, messages, tools)
    texts = loss_text(template, encoded.examples[0])
    assert len(texts) == 2
    call = texts[0]
    assert "<tool_call>" in call and call.endswith("<|im_end|>")
    payload = json.loads(call[call.index("{"):call.rindex("}") + 1])
    assert payload == {"name": "track_order", "arguments": {"order": "4411"}}
    assert texts[1] == "It is in transit.<|im_end|>"
    whole = template.tokenizer.decode(encoded.examples[0].input_ids, skip_special_tokens=False)
    assert "track_order" in whole.split("<|im_end|>")[0]  # the tools list is in the system turn
    assert "in transit\"}" in whole and "in transit\"}" not in "".join(texts)  # the tool's answer is context only


def test_a_template_without_tool_support_refuses_tool_records_by_name():
    from engine.train.examples import Row, refusals

    template = ModelTemplate.from_transformers(family_tokenizer("smollm2_chatml"))
    assert not template.renders_tools
    messages, tools = tool_record()
    plain = conversation()
    rows = [Row(1, plain, None), Row(2, messages, tools), Row(3, plain, None), Row(5, messages, None)]
    problems = refusals(template, rows, "training")
    assert len(problems) == 1
    assert "cannot render tools" in problems[0] and "records 2, 5" in problems[0]


def test_name_is_kept_where_the_template_renders_it():
    name_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] }}{% if m['name'] is defined %}"
                     "{{ ' (' + m['name'] + ')' }}{% endif %}{{ '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
                     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    fast = family_tokenizer("smollm2_chatml")
    fast.chat_template = name_template
    template = ModelTemplate.from_transformers(fast)
    assert template.renders_name
    messages = [{"role": "user", "content": "Hi", "name": "Priya"}, {"role": "assistant", "content": "Hello!"}]
    text = template.tokenizer.decode(encode_conversation(template, messages).examples[0].input_ids)
    assert "user (Priya)" in text
    plain = ModelTemplate.from_transformers(family_tokenizer("smollm2_chatml"))
    assert not plain.renders_name


def test_a_model_without_a_template_gets_the_documented_default():
    from engine.data.chat_template import DEFAULT_TEMPLATE

    fast = family_tokenizer("mistral_inst")
    fast.chat_template = None
    template = ModelTemplate.from_transformers(fast)
    assert template.source == "default" and template.template == DEFAULT_TEMPLATE
    encoded = encode_conversation(template, conversation())
    assert loss_text(template, encoded.examples[0]) == ["Order 4411 left the warehouse on Monday.</s>",
                                                        "Within three working days.</s>"]


def test_sharegpt_function_calls_become_tool_calls_on_real_data(realdata):
    """LLaMA-Factory's glaive tool-call demo (Apache-2.0): function_call turns are structured calls, never empty
    answers; observations are tool messages; the tools list is kept and parsed."""
    from engine.data.chat_template import record_tools
    from engine.data.loading import load_records

    records = load_records(realdata / "llama_factory" / "glaive_toolcall_en_demo.json").records
    with_calls = [r for r in records if any(m.get("tool_calls") for m in r.turns)]
    assert len(with_calls) == 153
    first = with_calls[0]
    call = next(m for m in first.turns if m.get("tool_calls"))
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "search_recipes"
    assert any(m["role"] == "tool" for m in first.turns)
    assert record_tools(first.extra)[0]["function"]["name"] == "search_recipes"
    template = ModelTemplate.from_transformers(family_tokenizer("qwen2_5"))
    encoded = encode_conversation(template, first.turns, record_tools(first.extra))
    assert any("search_recipes" in t for t in loss_text(template, encoded.examples[0]))


def test_fields_training_does_not_use_are_a_quality_finding_with_their_lines(ws, tmp_path):
    from engine.data.quality import check_file

    rows = [{"messages": [{"role": "user", "content": f"Question number {i} about the shop {i * 7}?"},
                          {"role": "assistant", "content": f"The answer to question {i} is {i * 3} euros."}]}
            for i in range(12)]
    rows[3]["messages"][1]["audio"] = {"id": "x"}
    rows[7]["metadata"] = {"source": "crm"}
    path = tmp_path / "fields.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    finding = next(f for f in check_file(path).findings if f.code == "unused_field")
    assert finding.locations == [4, 8]
    assert "message.audio" in finding.message and "metadata" in finding.message


def test_the_quality_report_says_when_a_models_template_folds_the_system_prompt(ws, tmp_path):
    from engine.data.quality import CheckOptions, check_file

    folder = tmp_path / "gemma-like"
    family_tokenizer("gemma", folder)
    rows = [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": f"Question number {i} about the shop {i * 7}?"},
                          {"role": "assistant", "content": f"The answer to question {i} is {i * 3} euros."}]}
            for i in range(12)]
    rows[4]["messages"].pop(0)
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    findings = {f.code: f for f in check_file(path, CheckOptions(tokenizer=str(folder))).findings}
    assert findings["system_folded"].locations == [n for n in range(1, 13) if n != 5]
    chatml = tmp_path / "chatml"
    family_tokenizer("qwen2_5", chatml)
    assert "system_folded" not in {f.code for f in check_file(path, CheckOptions(tokenizer=str(chatml))).findings}
