# keras-facehallu: the README's commands. `make test` and `make demo` set up .venv themselves:
# `make demo` installs only the package (what the main job needs), `make test` adds the [dev]
# extras (JAX, serving, export, Beam, torch for parity tests, pytest, ruff).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
STAMP := $(VENV)/.installed

.PHONY: setup setup-core test test-tf test-jax lint demo bench clean

$(CORE): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m keras_facehallu.assets fetch
	touch $(CORE)

$(STAMP): $(CORE)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup-core: $(CORE)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test-tf: $(STAMP)
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q --durations=15

# Model, loss and training-step tests on the JAX backend (the GPU path of this project).
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -m "multibackend and not slow" --durations=5; \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "no multibackend tests"; exit 0; fi; exit $$rc

test: lint test-tf test-jax

# The main job: hallucinate the context around the astronaut's face (public-domain NASA photo
# shipped with scikit-image) with the packaged default model, then put Hubble's deep field behind her.
SKDATA = $$($(BIN)/python -c "import os, skimage.data as d; print(os.path.dirname(d.__file__))")
demo: $(CORE)
	d=$(SKDATA); $(BIN)/facehallu "$$d/astronaut.png" -o out/demo --overwrite --background "$$d/hubble_deep_field.jpg"
	@echo "demo results: $$(pwd)/out/demo (sheet: out/demo/astronaut_face0_sheet.png)"

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
