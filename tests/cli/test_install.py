"""A non-editable install works outside the checkout: the wheel carries the
migrations (`backend._migrations`), so `lamtrack db upgrade` builds the schema,
and the console script reaches the clinical tools."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

from backend.config import REPO_ROOT


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, f"{cmd}: {out.stdout}\n{out.stderr}"
    return out.stdout


def test_wheel_installed_in_a_fresh_venv_upgrades_a_database_and_runs(tmp_path: Path) -> None:
    # build from a copy of the sources, so the checkout gets no build/ folder
    src = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "instance", "build", "*.egg-info", "__pycache__", ".*_cache", "tests"
        ),
    )
    dist = tmp_path / "dist"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
        "--disable-pip-version-check", "-w", dist, src, cwd=tmp_path,
    )  # fmt: skip
    wheels = list(dist.glob("lamtrack-*.whl"))
    assert len(wheels) == 1
    shutil.rmtree(src)

    # a fresh venv that sees the already-installed dependencies (this venv's
    # site-packages, through a .pth file) but not this checkout
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    vpy = venv / "bin" / "python"
    purelib = Path(
        _run(vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    )
    (purelib / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        vpy, "-m", "pip", "install", "--no-index", "--find-links", dist, "--no-deps", "--ignore-installed",
        "--disable-pip-version-check", "lamtrack", cwd=tmp_path,
    )  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 'lamtrack.db'}",
        "LAMTRACK_INSTANCE_DIR": str(tmp_path / "instance"),
        "LAMTRACK_JWT_KEYS": "install-1:" + "i" * 48,
    }
    where = _run(
        vpy,
        "-c",
        "import backend, backend.db_admin as d; print(backend.__file__, d.migrations_dir())",
        cwd=elsewhere,
        env=env,
    )
    package, migrations = where.split()
    assert package.startswith(str(purelib)) and migrations.startswith(str(purelib))
    assert not package.startswith(str(REPO_ROOT))

    lamtrack = venv / "bin" / "lamtrack"
    assert "database at head" in _run(lamtrack, "db", "upgrade", cwd=elsewhere, env=env)
    with sqlite3.connect(tmp_path / "db" / "lamtrack.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"patients", "spirometry_sessions", "alerts", "outbox_messages"} <= tables
    heads = sorted(p.name.split("_")[2] for p in (REPO_ROOT / "migrations" / "versions").glob("2*.py"))
    assert version in heads
    assert "--truth" in _run(lamtrack, "evaluate-cohort", "--help", cwd=elsewhere, env=env)
