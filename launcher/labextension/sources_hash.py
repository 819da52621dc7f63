"""The hash of the extension's sources, recorded next to the prebuilt output when it is built.

`python sources_hash.py --write` (run by `jlpm build`) writes it; the test suite checks that the
committed output was built from the committed sources (tests/launcher/test_labextension_bundle.py).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: What the build reads: sources, styles, settings schema, the toolchain's pins.
SOURCES = ("package.json", "tsconfig.json", "yarn.lock", "src/*.ts", "style/*", "schema/*.json")

#: Where the hash is written: beside the prebuilt extension.
STAMP = HERE / "jupyter-data" / "labextensions" / "hubflow-jobs" / "sources.sha256"


def sources_hash(root: Path = HERE) -> str:
    """sha256 over the sources' relative paths and contents, in path order."""
    digest = hashlib.sha256()
    paths = sorted({path for pattern in SOURCES for path in root.glob(pattern) if path.is_file()})
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python sources_hash.py --write")
    STAMP.write_text(sources_hash() + "\n")
    print(f"wrote {STAMP.relative_to(HERE)}")
