"""The standard Gateway API CRDs, taken from the Gateway API Go module's own YAML.

`go mod download` fetches `sigs.k8s.io/gateway-api` at a pinned version from the Go module proxy
(no other download site is reachable here); its `config/crd/standard` is copied into
~/.cache/modelops/gateway-api-<version>/ like the other builds, so later runs need no network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

VERSION = "v1.4.0"
"""The newest release whose go.mod this machine's Go (1.26) accepts; v1.5+ need Go 1.27."""
CACHE = Path(os.environ.get("MODELOPS_CACHE", Path.home() / ".cache" / "modelops"))


def standard_crds(version: str = VERSION) -> Path:
    """The folder of the standard channel's CRD files (HTTPRoute, Gateway, GatewayClass, ...)."""
    out = CACHE / f"gateway-api-{version}" / "crd-standard"
    if out.is_dir() and any(out.glob("*.yaml")):
        return out
    with tempfile.TemporaryDirectory(prefix="gateway-api-") as tmp:
        env = {
            **os.environ,
            "GOMODCACHE": str(Path(tmp) / "mod"),
            "GOFLAGS": "-mod=mod",
            "GOTOOLCHAIN": "local",
        }
        done = subprocess.run(
            ["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@{version}"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        info = json.loads(done.stdout or "{}")
        src = Path(info.get("Dir", "")) / "config" / "crd" / "standard"
        if not src.is_dir():
            raise RuntimeError(
                f"go mod download sigs.k8s.io/gateway-api@{version} failed: {done.stdout}{done.stderr}"
            )
        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(src, staging)
        for f in staging.rglob("*"):
            f.chmod(0o644 if f.is_file() else 0o755)  # the module cache is read-only
        staging.rename(out)
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False)
    return out
