"""Rewrite the paths of records written before portable records (issue 26) as today's harness writes them:
`{results}/…`, `{work}/…`, `{cache}/…`, `{data}/…`, `{elsewhere}/name`. Run on the machine whose paths they
hold; numbers, config hashes and commits are left as they are (a `+dirty` commit stays what it was).

    python tools/portable_records.py results/<study> ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.core.io import atomic_write_json
from harness.core.portable import portable, record_roots


def main(folders: list[str]) -> None:
    for folder in folders:
        changed = 0
        for path in sorted(Path(folder, "runs").glob("*.json")):
            record = json.loads(path.read_text())
            results_dir = (record.get("config") or {}).get("output", {}).get("results_dir") or folder
            rewritten = portable(record, record_roots(record.get("config") or {}, results_dir))
            if rewritten != record:
                atomic_write_json(path, rewritten)
                changed += 1
        print(f"{folder}: {changed} records rewritten")


if __name__ == "__main__":
    main(sys.argv[1:])
