from __future__ import annotations

from pathlib import Path

import pytest

from graphs.settings import load_settings
from simopt.errors import InputError


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for k in ("SOCRATES_LLM", "SOCRATES_RUNS_DIR", "SOCRATES_SEED", "SOCRATES_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    s = load_settings()
    assert s.llm == "offline" and s.seed == 0 and str(s.runs_dir) == "runs"


def test_file_then_environment_priority(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "socrates.toml").write_text('llm = "openai:m"\nseed = 3\n')
    monkeypatch.delenv("SOCRATES_LLM", raising=False)
    monkeypatch.setenv("SOCRATES_SEED", "7")
    s = load_settings()
    assert s.llm == "openai:m" and s.seed == 7


def test_yaml_file_and_errors(tmp_path, monkeypatch):
    for k in ("SOCRATES_LLM", "SOCRATES_SEED"):
        monkeypatch.delenv(k, raising=False)
    p = tmp_path / "s.yaml"
    p.write_text("socrates:\n  log_level: INFO\n")
    assert load_settings(p).log_level == "INFO"
    p.write_text("seed: -1\n")
    with pytest.raises(InputError, match="seed"):
        load_settings(p)
    p.write_text("colour: blue\n")
    with pytest.raises(InputError, match="colour"):
        load_settings(p)
    for text in ("?", "1: 2\n"):  # YAML keys that are not names (found by the fuzz test)
        p.write_text(text)
        with pytest.raises(InputError, match="setting names must be text"):
            load_settings(p)
    with pytest.raises(InputError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


# --- per-role model settings ------------------------------------------------------------------


def _clean_env(monkeypatch):
    for k in ("SOCRATES_LLM", "SOCRATES_LLM_ROLES", "SOCRATES_LLM_BASE_URL", "SOCRATES_CONFIG",
              "SOCRATES_LLM_TEMPERATURE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(k, raising=False)


ROLES_TOML = """
llm = "openai:small"
llm_base_url = "http://127.0.0.1:9/v1"

[llm_roles.causal_skeleton]
llm = "openai:big"
base_url = "http://127.0.0.1:8/v1"
temperature = 0.2
timeout = 120

[llm_roles.meta_optimizer]
llm = "offline"
"""


def test_per_role_settings_from_the_file_build_a_router(monkeypatch, tmp_path):
    from agents.llm import OfflineLLM, OpenAICompatibleLLM, RoleRouter
    from graphs.settings import build_llm

    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "socrates.toml").write_text(ROLES_TOML)
    s = load_settings()
    assert s.llm_roles["causal_skeleton"].temperature == 0.2
    llm = build_llm(s)
    assert isinstance(llm, RoleRouter)
    sk, plan = llm.backend_for("causal_skeleton"), llm.backend_for("planner")
    assert isinstance(sk, OpenAICompatibleLLM) and isinstance(plan, OpenAICompatibleLLM)
    assert (sk.model, sk.temperature, sk.timeout) == ("big", 0.2, 120.0)
    assert sk.base_url.startswith("http://127.0.0.1:8/v1")
    assert (plan.model, plan.timeout, plan.temperature) == ("small", 60.0, 0.0)
    assert plan.base_url.startswith("http://127.0.0.1:9/v1")
    assert isinstance(llm.backend_for("meta_optimizer"), OfflineLLM)
    models = llm.models()
    assert models["causal_skeleton"].startswith("openai:big@http://127.0.0.1:8")
    assert models["*"].startswith("openai:small@") and models["meta_optimizer"] == "offline"


def test_cli_role_options_go_over_the_file(monkeypatch, tmp_path):
    from graphs.settings import build_llm, parse_llm_role_option

    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "socrates.toml").write_text(ROLES_TOML)
    llm = build_llm(load_settings(), llm="offline", role_options=[
        "causal_skeleton=openai:bigger,temperature=0.7",
        "planner=openai:tiny,base_url=http://127.0.0.1:7/v1,max_tokens=256",
    ])
    sk, plan = llm.backend_for("causal_skeleton"), llm.backend_for("planner")
    assert (sk.model, sk.temperature, sk.timeout) == ("bigger", 0.7, 120.0)  # file's timeout kept
    assert (plan.model, plan.max_tokens) == ("tiny", 256)
    assert llm.backend_for("reporter").backend == "offline"  # --llm offline is the default
    role, opts = parse_llm_role_option("meta_optimizer=offline")
    assert role == "meta_optimizer" and opts.llm == "offline"


@pytest.mark.parametrize("option,match", [
    ("planner", "expected ROLE=SPEC"),
    ("skeleton=openai:x", "unknown role 'skeleton'"),
    ("planner=gpt-4", "must be 'offline' or 'openai:MODEL'"),
    ("planner=openai:x,colour=red", "colour"),
    ("planner=openai:x,temperature=hot", "temperature"),
    ("planner=openai:x,oops", "not key=value"),
])
def test_bad_role_options_are_input_errors(option, match):
    from graphs.settings import parse_llm_role_option

    with pytest.raises(InputError, match=match):
        parse_llm_role_option(option)


def test_role_settings_errors_and_environment(monkeypatch, tmp_path):
    from graphs.settings import build_llm

    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "socrates.toml").write_text('[llm_roles.skeleton]\nllm = "openai:x"\n')
    with pytest.raises(InputError, match="unknown role"):
        load_settings()
    (tmp_path / "socrates.toml").write_text('[llm_roles.planner]\nmodel = "x"\n')
    with pytest.raises(InputError, match="llm_roles.planner.model"):
        load_settings()
    (tmp_path / "socrates.toml").unlink()
    monkeypatch.setenv("SOCRATES_LLM_ROLES", '{"planner": {"llm": "openai:env-model", '
                       '"api_key_env": "PLANNER_KEY"}}')
    s = load_settings()
    assert s.llm_roles["planner"].llm == "openai:env-model"
    with pytest.raises(InputError, match="PLANNER_KEY"):
        build_llm(s)
    monkeypatch.setenv("PLANNER_KEY", "sk-planner")
    assert build_llm(s).backend_for("planner").client.api_key == "sk-planner"
    monkeypatch.delenv("SOCRATES_LLM_ROLES")
    assert build_llm(load_settings()).backend == "offline"  # no roles: the plain backend


# --- one settings object for every layer -------------------------------------------------------


def test_the_engines_read_the_runs_dir_and_ray_address_of_socrates_toml(monkeypatch, tmp_path):
    from core.executors import ray_address
    from training.runs import RunRegistry, runs_dir

    for k in ("SOCRATES_RUNS_DIR", "SOCRATES_RAY_ADDRESS", "SOCRATES_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "socrates.toml").write_text('runs_dir = "elsewhere"\nray_address = "auto"\n')
    assert load_settings().runs_dir == runs_dir() == Path("elsewhere")
    assert RunRegistry().path == Path("elsewhere", "registry.sqlite")
    assert ray_address() == "auto"
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path / "env"))  # the environment wins
    monkeypatch.setenv("SOCRATES_RAY_ADDRESS", " ")  # blank: unset, run locally
    assert runs_dir() == load_settings().runs_dir == tmp_path / "env"
    assert ray_address() is None


def test_settings_moved_to_core_keep_their_graphs_address():
    import core.settings
    import graphs.settings

    assert graphs.settings.Settings is core.settings.Settings
    assert graphs.settings.load_settings is core.settings.load_settings
