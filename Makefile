# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv (pip + venv; uv/poetry would ignore the local wheel cache)
# and installs prefcli into it, once per change of pyproject.toml.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo lint test test-fast venv bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,qlora,generate,label]"
	# Test oracles only (upstream code run by the parity tests), never dependencies:
	$(PY) -m pip install -q --no-deps image-reward==1.5 hpsv2==1.2.0 openai-clip==1.0.1 qwen-vl-utils==0.0.11
	$(PY) -m pip install -q --no-deps --target $(VENV)/oracles/transformers-4.27.3 transformers==4.27.3
	$(PY) -m pip install -q --no-deps --target $(VENV)/oracles/transformers-4.45.2 transformers==4.45.2
	$(PY) -m pip install -q --no-deps --target $(VENV)/oracles/hpsv3-1.0.0 hpsv3==1.0.0 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/prefcli demo

# ruff's rules and version are in pyproject.toml; `ruff check --fix . && ruff format .` mends what it can.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Both cores by default (pytest-xdist); JOBS=0 runs in one process. One torch/BLAS thread per worker:
# two workers with two threads each on two cores spend their time contending, not computing.
# --dist loadscope sends each test file to one worker, so a file's module fixtures (tiny models, built
# datasets, an upstream oracle's run) are built once, not once per worker: 201 -> 180 CPU-s for test-fast.
JOBS ?= 2
TEST_ENV := HF_HUB_OFFLINE=1 PREFCLI_TESTING=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
XDIST := -n $(JOBS) --dist loadscope

# --durations: the CI log names the slowest tests, so a slow suite says where its time went.
test: lint
	$(TEST_ENV) $(PY) -m pytest $(XDIST) --durations=20

# Everything but the end-to-end tests marked `slow`.
test-fast: lint
	$(TEST_ENV) $(PY) -m pytest $(XDIST) -m "not slow"

clean:
	rm -rf $(VENV) demo-out
