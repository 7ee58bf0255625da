# The two commands of the README. Each sets up .venv from nothing when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first, pinned, so the package's looser range (torch>=2.2,<3) is already met and pip pulls no other
# build: here the CPU wheel 2.13.0 (from the local wheel folder). Elsewhere, for the CPU build from PyTorch's
# index: make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: test demo install bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/planner demo

bench: $(STAMP)
	$(PY) benchmarks/selection_scaling.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
