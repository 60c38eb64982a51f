"""Design rules measured: lint clean, short functions, a library that leaves its host alone,
and a Python API that explains itself."""
import ast
import json
import os
import subprocess
import sys

import pytest

import nanobrag_torch as nb

from conftest import REPO

SRC = REPO / "src" / "nanobrag_torch"
MAX_FUNCTION_LINES = 80


def test_ruff_check_is_clean():
    pytest.importorskip("ruff", reason="ruff is a test dependency (pip install -e '.[test]')")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_no_function_in_src_is_longer_than_80_lines():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "functions longer than 80 lines: " + ", ".join(long)


# A fresh interpreter: the gc state and Inductor's configuration before importing the library
# and after rendering through the API with the compiled path forced. The kernel build is replaced
# by a stub that records the configuration it would have run under and then fails (the run then
# finishes on the eager engine), so this checks "patched only around a build" in seconds.
GUEST_PROBE = r"""
import gc, json, sys, warnings
frozen, enabled = gc.get_freeze_count(), gc.isenabled()
import torch
import torch._inductor
import torch._inductor.config as inductor_config
snapshot = lambda: {k: repr(v) for k, v in inductor_config.get_config_copy().items()}
before = snapshot()
seen = {}
def stub(program, package_path=None, **kw):
    seen["during"] = snapshot()
    raise RuntimeError("no compiler in this test")
torch._inductor.aoti_compile_and_package = stub
import nanobrag_torch as nb
sim = nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 16")
sim.use_compile = True
with warnings.catch_warnings(), torch.no_grad():
    warnings.simplefilter("ignore")
    image = nb.simulate(sim)
after = snapshot()
changed_during = sorted(k for k in before if seen.get("during", before)[k] != before[k])
print(json.dumps(dict(frozen=[frozen, gc.get_freeze_count()], enabled=[enabled, gc.isenabled()],
                      restored=before == after, changed_during=changed_during, built="during" in seen,
                      total=float(image.sum()))))
"""


def test_import_and_render_leave_gc_and_inductor_config_unchanged(tmp_path):
    env_cache = {"NANOBRAGG_CACHE": str(tmp_path / "cache"), "NANOBRAGG_COMPILE": "auto"}
    out = subprocess.run([sys.executable, "-c", GUEST_PROBE], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, **env_cache))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["frozen"][0] == r["frozen"][1] and r["enabled"] == [True, True]
    assert r["built"] and r["total"] > 0
    # the build ran under our settings, and the host's configuration came back afterwards
    assert "realize_reads_threshold" in r["changed_during"] and "assert_indirect_indexing" in r["changed_during"]
    assert r["restored"]


def test_version_and_public_api():
    from importlib import metadata
    assert nb.__version__ == metadata.version("nanobrag_torch")
    names = dir(nb)
    assert {"Simulation", "from_args", "parameters", "simulate", "Detector", "Crystal", "Beam"} <= set(names)
    assert "api" not in names and "cli" not in names  # submodules are not the API
    for name in nb.__all__:
        obj = getattr(nb, name)
        if callable(obj):
            doc = (obj.__doc__ or "").strip()
            # a dataclass without a docstring gets its signature as one
            assert doc and not doc.startswith(f"{name}("), f"nanobrag_torch.{name} has no docstring"


def test_from_args_takes_one_string_like_a_shell():
    text = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 12"
    one = nb.simulate(nb.from_args(text))
    listed = nb.simulate(nb.from_args(text.split()))
    assert float(one.sum()) > 0
    assert one.equal(listed)
    with pytest.raises(Exception, match="-detpixels"):
        nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -detpixels")


def test_library_import_does_not_tune_the_process():
    """The command line's start-up tuning (gc, malloc) lives in its entry point only."""
    for module in ("__init__.py", "api.py", "simulator.py", "cli.py", "fused.py"):
        tree = ast.parse((SRC / module).read_text())
        top_level_calls = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
        assert not top_level_calls, f"{module} runs {ast.unparse(top_level_calls[0])} on import"
    assert "mallopt" not in (SRC / "simulator.py").read_text()
