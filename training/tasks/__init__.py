"""Synthetic tasks (generated offline from a seed) and their rewards.

- :mod:`training.tasks.arithmetic`: ``"12+7="`` -> ``"19"``; generator, checker, preference pairs.
- :mod:`training.tasks.bandit`: the MallowsPO dispersion bandit (Mallows preferences over arms).
- :mod:`training.tasks.sudoku`, :mod:`training.tasks.countdown`: d1's reasoning tasks.

User data (JSONL, ``datasets.load_from_disk``) is loaded by :mod:`training.data`.
"""
