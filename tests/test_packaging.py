"""What ships: the installed pipeline carries neither the emulators nor their dependencies (Faker,
Starlette, uvicorn); those are dev tools, in the `emulators` extra that `dev` includes."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from biss_pipeline.domain.paths import PROJECT_ROOT

DEV_TOOL_DISTRIBUTIONS = ("starlette", "uvicorn", "faker")


def test_the_wheel_holds_the_pipeline_only_and_the_emulators_need_their_extra(tmp_path: Path) -> None:
    # A copy of the checkout (dev tools included, as a `pip install .` would see it): setuptools
    # builds in the source tree and would leave build/ in the repository.
    source = tmp_path / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "data", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--quiet",
                    "--wheel-dir", str(wheels)],
                   check=True, timeout=300, capture_output=True)
    [wheel] = wheels.glob("biss_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"biss_pipeline"}
    assert any(n.endswith("domain/warehouse/migrations/script.py.mako") for n in names)

    requirements = metadata.get_all("Requires-Dist") or []
    for distribution in DEV_TOOL_DISTRIBUTIONS:
        mentions = [r for r in requirements if r.lower().startswith(distribution)]
        assert mentions and all('extra == "emulators"' in r for r in mentions), (distribution, mentions)
    assert any(r.startswith("biss-pipeline[emulators]") and 'extra == "dev"' in r for r in requirements)


def test_the_production_image_copies_no_dev_tools() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert any("biss_pipeline" in line for line in copies)
    assert not any(tool in line for line in copies for tool in ("biss_emulators", "bench", "tests"))
