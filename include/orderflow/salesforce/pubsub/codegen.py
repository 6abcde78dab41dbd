"""Regenerate ``pubsub_api_pb2.py`` / ``pubsub_api_pb2_grpc.py`` from ``pubsub_api.proto``.

Run ``python -m orderflow.salesforce.pubsub.codegen`` after editing the proto (needs the dev
dependency ``grpcio-tools``). The generated gRPC module imports its message module by a bare
name; it is rewritten to a package-relative import so the package works wherever it is installed.
A unit test fails when the committed modules are not what this produces.
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
PROTO = PACKAGE_DIR / "pubsub_api.proto"
GENERATED = ("pubsub_api_pb2.py", "pubsub_api_pb2_grpc.py")

_BARE_IMPORT = re.compile(r"^import pubsub_api_pb2 as (\w+)$", re.M)


def generate(out_dir: Path) -> dict[str, str]:
    """Compile the proto into ``out_dir``; return ``{file name: text}`` with relative imports."""
    from grpc_tools import protoc  # dev dependency, imported only here

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO.parent}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        PROTO.name,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    texts = {}
    for name in GENERATED:
        text = (out_dir / name).read_text()
        texts[name] = _BARE_IMPORT.sub(r"from . import pubsub_api_pb2 as \1", text)
    return texts


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in generate(Path(tmp)).items():
            (PACKAGE_DIR / name).write_text(text)
            log.info("wrote %s", PACKAGE_DIR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
