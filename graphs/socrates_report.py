"""The SOCRATES run folder: skeleton (JSON + drawing), portfolio table, progress plot, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simopt.problem import Problem


def _plot_skeleton(skeleton: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    colors = {"decision": "#4c72b0", "exogenous": "#dd8452", "latent": "#c44e52",
              "intermediate": "#8c8c8c", "output": "#55a868"}
    for node in skeleton.get("nodes", []):
        g.add_node(node["name"], role=node.get("role", "intermediate"))
    for src, dst in skeleton.get("edges", []):
        g.add_edge(src, dst)
    try:
        for layer, nodes in enumerate(nx.topological_generations(g)):
            for n in nodes:
                g.nodes[n]["layer"] = layer
        pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal")
        pos = {k: (v[0], -v[1]) for k, v in pos.items()}
    except nx.NetworkXUnfeasible:
        pos = nx.spring_layout(g, seed=0)
    fig, ax = plt.subplots(figsize=(9, 6))
    nx.draw_networkx(
        g, pos, ax=ax, node_color=[colors.get(g.nodes[n].get("role"), "#999") for n in g],
        node_size=1400, font_size=7, arrows=True, arrowsize=12, edge_color="#555",
    )
    for role, c in colors.items():
        ax.scatter([], [], c=c, label=role)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("causal skeleton")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_progress(state: dict, path: Path, problem: Problem) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ex = state.get("execution") or {}
    if not ex.get("trajectory"):
        return
    data_used = int(state.get("data_used", 0))
    pts = ex["trajectory"]["points"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [data_used + p[0] for p in pts]
    ys = [p[2] for p in pts]
    ax.step(xs, ys, where="post", label="recommended design (own estimate)", color="#4c72b0")
    ax.axvline(data_used, color="#999", ls=":", label="end of data collection")
    fin = state.get("final")
    if fin and np.isfinite(fin["estimate"]):
        end = data_used + int(ex["used"]) + int(fin["n"]) + int(fin.get("selection_reps", 0))
        lo, hi = fin["ci"]
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar([end], [fin["estimate"]], yerr=[[fin["estimate"] - lo],
                        [hi - fin["estimate"]]], fmt="o", color="#dd8452", capsize=4,
                        label="final answer, 95% CI from fresh replications")
    for rp in state.get("replans", []):
        ax.axvline(rp["budget"], color="#c44e52", ls="--", alpha=0.8)
    if problem.known_optimum is not None:
        ax.axhline(problem.known_optimum[1], color="#55a868", ls="-.", label="known optimum")
    ax.set_xlabel("real-system replications")
    ax.set_ylabel("objective" + (" (min)" if problem.minimize else " (max)"))
    ax.set_title(f"SOCRATES on {problem.name}: red dashes = re-plans")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    out = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    for r in rows:
        out += "| " + " | ".join(str(r[c]) for c in cols) + " |\n"
    return out


def write_report(state: dict, result: dict[str, Any], run_dir: Path, problem: Problem,
                 llm: Any = None) -> None:
    """Write skeleton.json/png, portfolio.json, progress.png, result.json and report.md.

    With ``llm`` (the run's journaled backend) the report also gets the reporter role's summary
    and which model answered which role, with every fallback said once
    (:func:`agents.reporter.socrates_llm_section`).
    """
    from simopt.portfolio import PortfolioSummary

    run_dir.mkdir(parents=True, exist_ok=True)
    if state.get("skeleton"):
        (run_dir / "skeleton.json").write_text(json.dumps(state["skeleton"], indent=2))
        _plot_skeleton(state["skeleton"], run_dir / "skeleton.png")
    table: list[dict] = []
    if state.get("portfolio"):
        (run_dir / "portfolio.json").write_text(json.dumps(state["portfolio"]))
        table = PortfolioSummary.from_json(state["portfolio"]).table()
    _plot_progress(state, run_dir / "progress.png", problem)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2, default=float))
    (run_dir / "events.json").write_text(json.dumps(state.get("events", []), indent=1,
                                                    default=str))
    lines = [f"# SOCRATES on {problem.name}", ""]
    if "best_x" in result:
        x = np.round(np.asarray(result["best_x"], dtype=float), 6).tolist()
        lo, hi = result.get("ci", (float("nan"), float("nan")))
        kind = ("fresh replications that played no part in choosing it (unbiased)"
                if result.get("fresh_estimate") else
                "replications that also chose it (biased by selection: no final selection)")
        lines += [
            f"- recommended design: `{x}`",
            f"- its estimate: {result['best_estimate']:.6g}, "
            f"{100 * result.get('ci_level', 0.95):.0f}% CI [{lo:.6g}, {hi:.6g}], from "
            f"{result['best_reps']} {kind}",
            f"- real replications: {result['budget_used']} "
            f"({result['data_used']} for replica data, {result.get('selection_reps', 0)} for the "
            "final selection)",
        ]
    if problem.known_optimum is not None:
        lines.append(f"- known optimum: {problem.known_optimum[1]:.6g}")
    lines += ["", "## Replica ensemble", ""]
    ens = state.get("ensemble", {})
    for name, w in zip(ens.get("replicas", []), ens.get("weights", []), strict=False):
        lines.append(f"- {name}: weight {w:.3f}")
    lines += ["", "## Portfolio on the replicas (normalized gap, lower is better)", "",
              _table(table), "## Schedules tried by the meta-optimizer", ""]
    from simopt.schedule import Schedule

    for entry in state.get("tried", []):
        lines.append(f"- {Schedule.from_json(entry[0]).describe()}: score {entry[1]:.4f}")
    if state.get("schedule"):
        lines += ["", f"Chosen: **{Schedule.from_json(state['schedule']).describe()}**"]
        why = state.get("choice") or {}
        if why.get("rule"):
            test = (f" (best-scored {why['candidate']} vs default {why['default']}: mean "
                    f"paired score difference {why['mean_difference']:+.4f}, one-sided p = "
                    f"{why['p_value']:.3f}, level {why.get('level', why['alpha']):.3g} = "
                    f"{why['alpha']} / {why.get('candidates', 1)} candidates)"
                    if "p_value" in why else "")
            lines.append(f"- rule: {why['rule']}{test}")
    lines += ["", "## Monitoring and re-plans", ""]
    mon = state.get("monitor") or {}
    if mon.get("calibration"):
        cal = mon["calibration"]
        lines.append(f"- monitor: one-sided test of the incumbent's real mean against the "
                     f"replicas' prediction at checkpoints {mon.get('checkpoints')}, family "
                     f"false-alarm rate {mon.get('alpha')}; measured on the replicas: "
                     f"{cal['fired']} of {cal['runs']} runs fired (weighted rate "
                     f"{cal['rate']:.2f})")
    for rp in state.get("replans", []):
        lines.append(f"- at {rp['budget']}: {rp['reason']}; {rp['old']} -> {rp['new']}")
    if not state.get("replans"):
        lines.append("- no re-plan: the real system was never significantly worse than the "
                     "replicas predicted")
    fin = state.get("final") or {}
    if fin.get("candidates"):
        lines += ["", "## Final selection", "",
                  "| candidate | pooled mean (chose it) | replications |", "|---|---|---|"]
        for cx, cm, cn in fin["candidates"]:
            lines.append(f"| `{np.round(np.asarray(cx, float), 6).tolist()}` | {cm:.6g} | {cn} |")
    if llm is not None:
        from agents.reporter import socrates_llm_section

        lines += ["", socrates_llm_section(state, result, run_dir, llm)]
    lines += ["", "Files: skeleton.json, skeleton.png, portfolio.json, progress.png, "
              "result.json, events.json, journal.jsonl (every real replication)."]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
