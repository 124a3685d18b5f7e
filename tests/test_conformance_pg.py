"""The public durable conformance cases (those with a case.py) played against PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SHIM = '''\
import os, sys
# the case names its database `--db FILE`; this run points every --db at one PostgreSQL database
argv = sys.argv[1:]
for i, arg in enumerate(argv[:-1]):
    if arg == "--db":
        argv[i + 1] = {url!r}
os.execv(sys.executable, [sys.executable, "-m", "whenthen", *argv])
'''


def test_durable_conformance_cases_pass_on_postgresql(conformance: Path, pg_server, tmp_path: Path) -> None:
    cases = sorted(d for d in conformance.iterdir() if (d / "case.py").exists())
    assert cases, f"no durable case (case.py) under {conformance}"
    for case in cases:
        url = pg_server.fresh()
        shim = tmp_path / f"whenthen-{case.name}.py"
        shim.write_text(SHIM.format(url=url))
        done = subprocess.run([sys.executable, str(conformance / "run"), "--cmd", f"{sys.executable} {shim}",
                               str(case)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{case.name} on PostgreSQL:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr
        pg_server.drop(url)
