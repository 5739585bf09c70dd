"""Per-role models from socrates.toml and --llm-role, end to end through the CLI (fake server).

The skeleton goes to a "big" model named in socrates.toml, the meta-optimizer to a "small" one
given on the command line with its own temperature; the server sees each role's requests under
its model, and the summary and report.md say which model answered which role.
"""

from __future__ import annotations

import json

from graphs.cli import main
from tests.reliability.test_llm_faults import _role

SCHEDULE = {"segments": [{"solver": "nelder_mead", "fraction": 1.0}], "final_selection": 0.0,
            "rationale": "simplex"}


def test_each_role_gets_its_own_model_and_the_report_names_them(llm_server, monkeypatch,
                                                                 tmp_path, capsys):
    def answer(body):
        if _role(body) == "schedule":
            return SCHEDULE
        return {"nodes": [], "edges": []}  # a skeleton the role refuses: it falls back

    llm_server.responder = answer
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("SOCRATES_CONFIG", raising=False)
    monkeypatch.delenv("SOCRATES_LLM", raising=False)
    monkeypatch.setattr("graphs.socrates_state.DEFAULT_SOLVERS", ["random_search", "nelder_mead"])
    (tmp_path / "socrates.toml").write_text(
        f'[llm_roles.causal_skeleton]\nllm = "openai:big"\nbase_url = "{llm_server.base_url}"\n'
        f"max_repairs = 0\nmax_retries = 0\n")
    argv = ["optimize", "--problem", "EXAMPLE-1", "--budget", "60", "--rounds", "1", "--json",
            "--llm-role", f"meta_optimizer=openai:small,base_url={llm_server.base_url},"
            "temperature=0.3,max_retries=0"]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)

    by_role = {}
    for body in llm_server.requests:
        by_role.setdefault(_role(body), set()).add((body["model"], body.get("temperature")))
    assert by_role == {"skeleton": {("big", 0.0)}, "schedule": {("small", 0.3)}}
    models = summary["models"]
    assert models["causal_skeleton"].startswith("openai:big@http://127.0.0.1")
    assert models["meta_optimizer"].startswith("openai:small@http://127.0.0.1")
    assert models["reporter"] == "offline"
    folder = tmp_path / "runs" / summary["run_dir"].split("/")[-1]
    cli = json.loads((folder / "cli.json").read_text())
    assert cli["llm_roles"] == argv[-1:]  # a resume uses the same models
    report = (folder / "report.md").read_text()
    section = report[report.index("## Language models"):]
    # three schema-valid skeletons (the role re-prompts twice), all refused: one fallback
    assert f"| causal_skeleton | {models['causal_skeleton']} | 3 | 3 | 0 | 0 | 1 |" in section
    assert f"| meta_optimizer | {models['meta_optimizer']} | 1 | 1 |" in section
    assert section.count("- causal_skeleton: fallback to the offline policy") == 1


def test_a_bad_llm_role_option_is_one_line(capsys):
    assert main(["optimize", "--problem", "EXAMPLE-1", "--llm-role", "skeleton=openai:x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown role 'skeleton'" in err and len(err.splitlines()) == 1
    assert main(["ask", "compare Nelder-Mead with random search on EXAMPLE-1", "--dry-run",
                 "--llm-role", "planner=openai:x,temperature=hot"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--llm-role" in err and "temperature" in err and len(err.splitlines()) == 1


def test_socrates_ask_names_the_planners_model(llm_server, monkeypatch, tmp_path, capsys):
    llm_server.responder = lambda body: {"runs": []}  # refused: the offline parser plans
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOCRATES_CONFIG", raising=False)
    monkeypatch.delenv("SOCRATES_LLM", raising=False)
    request = "compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds"
    assert main(["ask", request, "--dry-run", "--json", "--llm-role",
                 f"planner=openai:planner-model,base_url={llm_server.base_url},"
                 "max_retries=0"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["models"]["planner"].startswith("openai:planner-model@http://127.0.0.1")
    assert {b["model"] for b in llm_server.requests} == {"planner-model"}
    assert main(["ask", request, "--dry-run", "--llm-role",
                 f"planner=openai:planner-model,base_url={llm_server.base_url},"
                 "max_retries=0"]) == 0
    out = capsys.readouterr().out
    assert "planner: openai:planner-model@" in out and "the offline parser wrote this plan" in out
