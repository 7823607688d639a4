# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= demo-run

.PHONY: setup demo test test-fast lint bench clean promtool

# Two stamps, each redone when pyproject.toml changes: the demo needs epochwatch and CPU TensorFlow
# only (.demo-installed); `make test` adds the dev tools on top (.installed). A second run installs
# nothing, and `make test` after `make demo` installs only the dev extra. The installs go through
# uv (pip's interface, from the same package index, into the same venv): it fetches and unpacks
# the ~1.4 GB of wheels in parallel. --compile-bytecode as pip does: without the .pyc files every
# fresh interpreter compiles TensorFlow again where the environment says PYTHONDONTWRITEBYTECODE
# (an import of TensorFlow then costs 16 s of CPU instead of 6).
UV := $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY)
$(VENV)/.demo-installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("epochwatch needs Python 3.10+") if sys.version_info < (3, 10) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q --disable-pip-version-check uv
	$(UV) -e '.[cpu]'
	touch $@

$(VENV)/.installed: $(VENV)/.demo-installed
	$(UV) -e '.[cpu,dev]'
	# tf-keras (legacy Keras 2, for the distributed fit test) at TF's version; --no-deps because it
	# requires the full `tensorflow` dist, which would replace tensorflow-cpu.
	$(UV) --no-deps "tf-keras==$$($(PY) -c 'import tensorflow as tf; print(".".join(tf.__version__.split(".")[:2]))').*"
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.demo-installed
	rm -rf $(DEMO)
	TF_CPP_MIN_LOG_LEVEL=2 EPOCHWATCH_DIR=$(DEMO)/traces $(PY) examples/demo_train.py --workdir $(DEMO)
	$(VENV)/bin/epochwatch report $(DEMO)/traces

# promtool runs the tests of the shipped Prometheus rules (tests/unit/test_prometheus_rules.py),
# which skip without it. CI (CI=true) installs it with `make test`; elsewhere `make promtool` does.
# It comes in Debian's prometheus package (as root; on a host run by systemd that package also
# starts a Prometheus server: `systemctl disable --now prometheus` stops it).
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || \
	  echo "promtool could not be installed (needs root and apt-get): the Prometheus rule tests skip"

# The whole suite: the README's command and CI's. First the rest, a worker a core and one more
# (at most 4; each has its own TensorFlow zygote, tests/zygote.py: about 1 GiB with its
# training child): a worker a core left a fifth of the CPU idle while tests start processes,
# daemons and sockets (2 cores: 311 s with 2 workers, 284 s with 3, 252 s with 4, but at 4
# three timing tests failed in three clean clones of five). A test file to a worker (its module
# fixtures run once; the files that share a session fixture go to one worker together:
# tests/conftest.py); then, apart from that CPU load, the tests that hold
# the daemon to 1 s under a load of their own (`serial`), two files at a time: they wait more
# than they compute (60 s of CPU in 150 s). Side by side the two lanes took two minutes less,
# but once, under the parallel lane's load, a soak's training gave up on its daemon and fell
# back to its own trace.
PYTEST   := $(PY) -m pytest -q -p no:cacheprovider
WORKERS  := $(shell $(PYTHON) -c 'import os; print(min(4, len(os.sched_getaffinity(0)) + 1))' 2>/dev/null || echo 2)
PARALLEL := -n $(WORKERS) --dist loadfile
SERIAL   := -n 2 --dist loadfile
# Bytecode for epochwatch and the tests, written before the suite: the editable install has none,
# and where the environment says PYTHONDONTWRITEBYTECODE (this machine and CI do) every process
# the suite starts (a script, a daemon, a CLI call: hundreds) would compile epochwatch's modules
# again, 0.3 s of CPU each. Only changed files are compiled again.
BYTECODE := $(PY) -m compileall -q epochwatch tests
test: setup $(if $(CI),promtool)
	$(BYTECODE)
	$(PYTEST) $(PARALLEL) -m "not serial"
	$(PYTEST) $(SERIAL) -m serial

# The inner loop: everything but the tests marked `slow` (long training, the soak, multi-process jobs).
test-fast: setup
	$(BYTECODE)
	$(PYTEST) $(PARALLEL) -m "not slow and not serial"
	$(PYTEST) $(SERIAL) -m "not slow and serial"

lint: setup
	$(VENV)/bin/ruff check epochwatch tests bench examples
	$(VENV)/bin/ruff format --check epochwatch tests bench examples
	$(VENV)/bin/mypy epochwatch

bench: setup
	$(PY) bench/hook_overhead.py

clean:
	rm -rf $(VENV) $(DEMO) epochwatch-traces .pytest_cache
