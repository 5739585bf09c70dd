"""MallowsPO vs DPO on the synthetic dispersion bandit (CPU, well under a minute).

Each prompt has a true ranking of its arms and a true Mallows dispersion phi (1 = uniform
preferences). Preference pairs come from the Mallows model; the reference policy is the
distribution of first choices (its entropy grows with phi). We train DPO, MallowsPO-theta and
MallowsPO-phi (dispersion from the reference entropy, as in the paper; add --oracle for the
true-phi diagnostic) and print, per prompt, whether the learned reward
``beta * log(pi / pi_ref)`` ranks the arms like the truth (Kendall tau) and its scale
(reward gained per rank step). DPO's scale tracks the dispersion (about -log phi); MallowsPO
with the true phi does not, with the paper's entropy estimate only partly (what
bench/results/mallowspo_study.md measured at convergence; this example stops early).

    python examples/mallowspo_bandit.py [--seed 0] [--oracle]

Runs are recorded like any other (``socrates runs list``).
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from training import train

PHIS = [0.2, 0.5, 0.7]


def bandit_config(algorithm: str, seed: int, dispersion: str = "reference_entropy") -> dict:
    return {
        "algorithm": algorithm,
        "name": f"bandit {algorithm} {dispersion}",
        "seed": seed,
        "model": {"name": "tabular"},
        "data": {"task": "bandit", "bandit": {"phis": PHIS, "n_arms": 5,
                                              "pairs_per_prompt": 2000}},
        "batch_size": 256,
        "max_steps": 150,
        "max_grad_norm": None,
        "optimizer": {"lr": 0.1},
        "preference": {"beta": 1.0, "dispersion": dispersion},
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle", action="store_true", help="also run with the true phi")
    args = parser.parse_args(argv)

    variants = [("dpo", "reference_entropy"), ("mallowspo-theta", "reference_entropy"),
                ("mallowspo-phi", "reference_entropy")]
    if args.oracle:
        variants += [("mallowspo-theta", "oracle"), ("mallowspo-phi", "oracle")]
    results = {}
    for algorithm, dispersion in variants:
        label = algorithm if dispersion == "reference_entropy" else f"{algorithm} (oracle)"
        results[label] = train(bandit_config(algorithm, args.seed, dispersion)).metrics

    short = {"dpo": "DPO", "mallowspo-theta": "Mallows-θ", "mallowspo-phi": "Mallows-φ"}
    table = Table(title="Dispersion bandit: tau / gap per prompt (tau: Kendall tau of the "
                        "learned reward vs the true ranking; gap: reward per rank step)")
    table.add_column("prompt", no_wrap=True)
    table.add_column("true φ", justify="right", no_wrap=True)
    for label in results:
        name = short[label.split()[0]] + ("*" if "oracle" in label else "")
        table.add_column(name, justify="right", no_wrap=True)
    for x, phi in enumerate(PHIS):
        row = [str(x), f"{phi:.2f}"]
        for m in results.values():
            row.append(f"{m[f'eval/kendall_tau/p{x}']:.2f} / {m[f'eval/reward_gap/p{x}']:.2f}")
        table.add_row(*row)
    table.add_row("gap max/min", "", *[f"{m['eval/reward_gap_spread']:.2f}"
                                       for m in results.values()])
    console = Console()
    console.print(table)
    if args.oracle:
        console.print("* oracle: c(x), φ(x) from the true dispersion instead of the entropy.")
    console.print(
        f"After {bandit_config('dpo', 0)['max_steps']} minibatch steps (not converged): an "
        "illustration, not a measurement. At convergence (bench/results/mallowspo_study.md): "
        "DPO's reward per rank step shrinks with the dispersion (1.47 / 0.58 / 0.29 for phi "
        "0.2 / 0.5 / 0.7); MallowsPO divides it out with the true phi (--oracle: spread 1.0-1.1) "
        "but only partly with the paper's entropy estimate (spread about 2.5, inverted); and on "
        "this per-prompt bandit MallowsPO does not recover rankings DPO loses."
    )
    return results


if __name__ == "__main__":
    main()
