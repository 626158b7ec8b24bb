# The README's quick start: `make up` and `make test`. Both create the virtual environment first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

PEERS  := var/peers-venv

.PHONY: install up test lint bench peers peers-venv lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/diva up --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

lab: $(STAMP)
	$(VENV)/bin/diva lab build

bench: $(STAMP)
	$(PY) bench/train_step.py
	$(PY) bench/serve.py

# infinity (the peer of bench/peers.py) in a venv of its own: its pins (numpy<2, transformers 4.47,
# uvicorn 0.32) would fight the project's. torch is pinned as in pyproject.toml (taken from disk).
$(PEERS)/.installed:
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q -U pip
	$(PEERS)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 \
		'infinity-emb[server,torch,vision]==0.0.78' aiohttp
	touch $@

peers-venv: $(PEERS)/.installed

peers: $(STAMP) $(PEERS)/.installed
	$(PY) bench/peers.py --quick

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
