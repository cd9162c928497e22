"""Chat templates and special tokens of each family, shortened from the ones the real models ship, for the tiny
random models the family tests build."""

from __future__ import annotations

QWEN_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
               "<|video_pad|>"]
IDEFICS_TOKENS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                  "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                 "<|image|>", "<|python_tag|>", "<|finetune_right_pad_id|>"]
GEMMA_TOKENS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
                "<image_soft_token>"]

_PARTS = "{% if message['content'] is string %}{% set parts = [{'type': 'text', 'text': message['content']}] %}" \
         "{% else %}{% set parts = message['content'] %}{% endif %}"

QWEN = (
    "{% for message in messages %}" + _PARTS +
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% for part in parts %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_IMAGE = (  # LLaVA-OneVision (Qwen2 inside)
    "{% for message in messages %}" + _PARTS + "<|im_start|>{{ message['role'] }}\n"
    "{% for part in parts %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML = (  # Qwen2.5 / Qwen3 / SmolLM2 text models
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAVA = (  # llava-hf/llava-1.5: USER: <image>\n... ASSISTANT: ...
    "{% for message in messages %}" + _PARTS +
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for part in parts if part['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for part in parts if part['type'] == 'text' %}{{ part['text'] + ' ' }}{% endfor %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
MISTRAL_IMAGE = (  # llava-v1.6-mistral: [INST] <image>\n... [/INST] answer</s>
    "{% for message in messages %}" + _PARTS +
    "{% if message['role'] == 'assistant' %}"
    "{% for part in parts if part['type'] == 'text' %}{{ ' ' + part['text'] }}{% endfor %}{{ eos_token }}"
    "{% else %}[INST] {% for part in parts if part['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for part in parts if part['type'] == 'text' %}{{ part['text'] }}{% endfor %} [/INST]"
    "{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% for message in messages %}" + _PARTS +
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{% for part in parts %}{% if part['type'] == 'image' %}<start_of_image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}{% endfor %}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
IDEFICS = (  # SmolVLM / Idefics3: User:<image>...<end_of_utterance>\nAssistant: ...
    "<|im_start|>{% for message in messages %}" + _PARTS + "{{ message['role'] | capitalize }}"
    "{% if parts[0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in parts %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}" + _PARTS +
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% for part in parts %}{% if part['type'] == 'image' %}<|image|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}{% endfor %}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
