"""What ships: the installed pipeline carries neither the emulators nor their dependencies (Faker,
Starlette, uvicorn); those are dev tools, in the `emulators` extra that `dev` includes."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

from biss_pipeline.domain.paths import PROJECT_ROOT

DEV_TOOL_DISTRIBUTIONS = ("starlette", "uvicorn", "faker")


def test_the_wheel_holds_the_pipeline_only_and_the_emulators_need_their_extra(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(PROJECT_ROOT), "--no-deps", "--quiet",
                    "--wheel-dir", str(tmp_path)],
                   check=True, timeout=300, capture_output=True)
    [wheel] = tmp_path.glob("biss_pipeline-*.whl")
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
