"""Plumbing every layer of socrates-lab shares: the error hierarchy and where jobs run.

``core`` imports nothing else of the project. The two engines (:mod:`simopt`, :mod:`training`)
import only ``core`` from each other's world; ``agents`` imports the engines and ``core``;
``graphs`` wires everything (``tests/test_layers.py`` fails when an import crosses a layer the
wrong way).
"""
