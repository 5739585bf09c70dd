"""The error hierarchy, re-exported from :mod:`core.errors` where it lives (every layer uses it)."""

from core.errors import (
    BudgetExhaustedError,
    InputError,
    LLMError,
    SimulationError,
    SocratesError,
)

__all__ = ["BudgetExhaustedError", "InputError", "LLMError", "SimulationError", "SocratesError"]
