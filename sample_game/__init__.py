"""Emberfall, the pygame sample game, and the scene renderer it shares with the training-corpus builder.

Importing the package loads nothing heavy: :mod:`sample_game.world` and :mod:`sample_game.scene` need only
numpy and Pillow; the game itself (pygame) starts with ``python -m sample_game``.
"""
