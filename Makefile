# The two quick-start commands: `make demo` (main job) and `make test` (whole suite).
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
CONTRACTS = $(wildcard ../shared/contracts)

.PHONY: install demo test cards benchmarks docs

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# tensorflow-serving-api pulls the full tensorflow package unless installed without its dependencies
install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps 'tensorflow-serving-api==2.21.*'

# Load scinet-heliocentric, predict a year of the Sun and Mars seen from Earth, print the error, write a figure.
demo: install
	$(BIN)/python -m zoo demo --out outputs/heliocentric-year.png

test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps 'tensorflow-serving-api==2.21.*'
	$(BIN)/python -m pytest tests $(CONTRACTS)

cards: install
	$(BIN)/python -m zoo card
	$(BIN)/python -m training.recipes.rbm model_cards/rbm-ising-L8-observables.png

benchmarks: install
	$(BIN)/python benchmarks/scinet_speed.py
	$(BIN)/python benchmarks/finetune_steps.py
	$(BIN)/python benchmarks/training_scaling.py
	$(BIN)/python benchmarks/serving_load.py
	$(BIN)/python benchmarks/ising_speed.py
	$(BIN)/python benchmarks/siamese_speed.py
	$(BIN)/python -m pip install -q -e '.[jets,ray]'
	$(BIN)/python benchmarks/jet_generation.py
	$(BIN)/python benchmarks/jet_tagger_speed.py
	$(BIN)/python benchmarks/calogan_speed.py
	$(BIN)/python benchmarks/calogan_training.py
	$(BIN)/python benchmarks/flow_sampling.py
	$(BIN)/python benchmarks/translator_speed.py

# the documentation site from README.md and model_cards/ into build/site (MkDocs, strict; fails on a broken link or missing figure)
# the site goes to DOCS_OUT (make docs DOCS_OUT=/tmp/site), build/site of the checkout by default
DOCS_OUT ?= build/site
docs: install
	$(BIN)/python -m pip install -q -e '.[docs]'
	$(BIN)/python docs/build_site.py --out $(DOCS_OUT)
