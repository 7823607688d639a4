# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= demo-run

.PHONY: setup demo test test-fast lint bench clean

# One stamp per pyproject change: a fresh clone installs everything, a second run installs nothing.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("epochwatch needs Python 3.10+") if sys.version_info < (3, 10) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[cpu,dev]'
	# tf-keras (legacy Keras 2, for the distributed fit test) at TF's version; --no-deps because it
	# requires the full `tensorflow` dist, which would replace tensorflow-cpu.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps \
	  "tf-keras==$$($(PY) -c 'import tensorflow as tf; print(".".join(tf.__version__.split(".")[:2]))').*"
	touch $@

setup: $(VENV)/.installed

demo: setup
	rm -rf $(DEMO)
	TF_CPP_MIN_LOG_LEVEL=2 EPOCHWATCH_DIR=$(DEMO)/traces $(PY) examples/demo_train.py --workdir $(DEMO)
	$(VENV)/bin/epochwatch report $(DEMO)/traces

# The whole suite: the README's command and CI's.
test: setup
	$(PY) -m pytest -q -p no:cacheprovider

# The inner loop: everything but the tests marked `slow` (long training, the soak, multi-process jobs).
test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: setup
	$(VENV)/bin/ruff check epochwatch tests bench examples
	$(VENV)/bin/ruff format --check epochwatch tests bench examples
	$(VENV)/bin/mypy epochwatch

bench: setup
	$(PY) bench/hook_overhead.py

clean:
	rm -rf $(VENV) $(DEMO) epochwatch-traces .pytest_cache
