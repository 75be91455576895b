"""The Pi runtime must not pull in training or server dependencies."""

import subprocess
import sys

HEAVY = ["tensorflow", "keras", "sklearn", "matplotlib", "pyarrow", "pyaudio", "soundfile", "torch"]


def test_edge_modules_import_without_heavy_dependencies():
    code = (
        "import sys, importlib, pkgutil, edge\n"
        "for m in pkgutil.walk_packages(edge.__path__, 'edge.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(sorted(set({HEAVY!r}) & {{k.split('.')[0] for k in sys.modules}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_cli_help_and_version():
    for args in (["--help"], ["--version"], ["config", "--help"]):
        out = subprocess.run(
            [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and out.stdout.strip(), (args, out.stderr)
