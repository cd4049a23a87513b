"""The fixed texts that the `scripted` tiny test model always answers.

`tools/build_test_model.py --variant scripted` plants one token chain in the model's
embedding and output layers:

    "\\n" (the end of the prompt's ``<think>\\n``) -> SCRIPTED_REASONING -> ``</think>``
    -> "\\n\\n" -> SCRIPTED_ANSWER -> ``<｜end▁of▁sentence｜>``

so every reply of that model, whatever the prompt, is exactly this reasoning and answer.
Served by vLLM with ``--reasoning-parser deepseek_r1`` the stream carries:

* ``delta.reasoning`` joined == EXPECTED_REASONING == SCRIPTED_REASONING exactly (the "\\n"
  that starts the chain is the prompt's own last token, so generation begins after it;
  ``</think>`` itself is never sent);
* ``delta.content`` joined == EXPECTED_CONTENT ("\\n\\n" + SCRIPTED_ANSWER, as with the real
  model, whose answer follows ``</think>`` and a blank line).

Like the real model's, the reasoning ends with a line break (here the single token ".\\n").
Each token of the chain must be unique (the next token depends on the current one only),
so the texts repeat no BPE token and have no other line break; the build script checks that.
Kept free of imports so the bot's tests and the vLLM venv's build script can both load it.
"""

from __future__ import annotations

SCRIPTED_REASONING = (
    "Okay, the user wrote something. Parley's scripted check expects exactly this reasoning "
    "before an answer.\n"
)

SCRIPTED_ANSWER = (
    "Hello from a **fixed** test model: its weights are planted by "
    "`tools/build_test_model.py` so real replies need DeepSeek-R1!"
)

# What the OpenAI-compatible stream delivers (see the module docstring).
EXPECTED_REASONING = SCRIPTED_REASONING
EXPECTED_CONTENT = "\n\n" + SCRIPTED_ANSWER

# The name vLLM serves the model under, whichever weights are behind it.
SERVED_MODEL_NAME = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
