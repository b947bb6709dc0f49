"""``python -m npc_runtime`` runs the ``npc-runtime`` command."""

from .cli import main

raise SystemExit(main())
