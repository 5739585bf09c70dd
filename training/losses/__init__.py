"""Pure loss functions: tensors and hyperparameters in, per-example or per-token tensors out.

One family per module, each with its variants in a typed registry:

- :mod:`training.losses.preference`: DPO, IPO, SimPO and MallowsPO-θ/φ (``PREFERENCE_LOSSES``),
  plus the reference-entropy dispersion weight.
- :mod:`training.losses.opd`: on-policy distillation with f-divergences (``F_DIVERGENCES``),
  stop-gradient and OPD+ advantages, the clipped policy loss and the GKD full-vocabulary loss.

Submodules are imported explicitly (``from training.losses.opd import opd_advantages``) so that
importing one family never pulls in another.
"""
