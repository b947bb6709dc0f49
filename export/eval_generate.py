"""Replies for evaluation: many prompts through the runtime's own scheduler, greedy, with continuous batching.

The logic lives once, in :mod:`npc_runtime.batch` (the dialogue-tree generator uses it too); this module keeps
the evaluation's import path. Evaluation goes through exactly the code path a game gets, so what is measured is
what ships.
"""

from __future__ import annotations

from npc_runtime.batch import Generation, Prompt, generate, png_image

__all__ = ["Prompt", "Generation", "generate", "png_image"]
