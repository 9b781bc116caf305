# Worker (and launcher) image for Dataflow: Beam's Python SDK image plus embedgen with the gcp extra.
# The embedded model is left out by default (it compiles llama.cpp); add it with --build-arg EMBEDDED=1.
#   docker build -t embedgen .                          # Gemini on Vertex AI, BigQuery
#   docker build --build-arg EMBEDDED=1 -t embedgen .   # also --model embedded (needs a compiler; several minutes)
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

ARG EMBEDDED=0
# Portable llama.cpp build for the embedded extra (no -march=native), as in the Makefile.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF" \
    HF_HUB_OFFLINE=1

WORKDIR /embedgen
COPY setup.py MANIFEST.in pyproject.toml README.md ./
COPY pipelines ./pipelines
COPY transforms ./transforms
COPY prompts ./prompts

RUN if [ "$EMBEDDED" = "1" ]; then \
        apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
        && rm -rf /var/lib/apt/lists/* \
        && pip install --no-cache-dir '.[gcp,embedded]'; \
    else \
        pip install --no-cache-dir '.[gcp]'; \
    fi \
    && python -c "import glob, os, prompts, pipelines.generate; assert glob.glob(os.path.join(os.path.dirname(prompts.__file__), '**', '*.jinja2'), recursive=True)"

# Beam's SDK image starts the worker harness (its ENTRYPOINT); as a launcher, run `python -m pipelines.generate ...`.
