"""Offline dialogue trees: batched generation with the runtime and export to the formats writers use.

``generate_trees`` fills planned trees level by level through the engine's batching; ``export_tree`` writes a
:class:`DialogueTree` as JSON, Ink, Yarn Spinner, Twee 3 or Godot Dialogue Manager text; ``npc-runtime tree``
(:mod:`npc_runtime.trees.cli`) does both from the command line.
"""

from __future__ import annotations

from .formats import FORMATS, export_tree, format_for_path
from .generate import TreeJob, TreeSettings, count_lines, generate_trees, plan_tree
from .model import Choice, DialogueTree, Emotion, TreeError, TreeNode, clean_text

__all__ = [
    "FORMATS",
    "Choice",
    "DialogueTree",
    "Emotion",
    "TreeError",
    "TreeJob",
    "TreeNode",
    "TreeSettings",
    "clean_text",
    "count_lines",
    "export_tree",
    "format_for_path",
    "generate_trees",
    "plan_tree",
]
