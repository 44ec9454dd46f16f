# make demo   set up a virtual environment, get Fashion-MNIST, train an MLP on it
# make test   set up a virtual environment with the test tools, run the test suite
# make bench  minidl against PyTorch, side by side (needs torch in the venv)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR := /usr/share/datasets/fashion-mnist
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: demo test bench data venv clean

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,distributed,export,plot,tensorboard]'
	touch $@

# Fashion-MNIST from Debian's package when it can be installed; otherwise minidl downloads it
# (MD5-checked) into ~/.cache/minidl on first use.
data:
	@if [ -n "$$MINIDL_DATA" ] || [ -d $(DATA_DIR) ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } || \
	  echo "note: could not install dataset-fashion-mnist; minidl will download the data instead"; \
	fi

demo: $(VENV)/.installed data
	$(BIN)/python scripts/train_fashion.py --model mlp --epochs 5

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: $(VENV)/.installed-test data
	$(BIN)/python -m pytest; rc=$$?; [ $$rc -eq 5 ] && echo "no tests collected" && exit 0; exit $$rc

bench: $(VENV)/.installed-test data
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache build *.egg-info
