"""What the service code says about its own addresses, read from
services/<name>/src/env.rs: the variable that sets the HTTP (admin) address
and the default HTTP and gRPC addresses. The image and compose checks
compare their ports and variables with these, so they follow the code.

Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CONST = re.compile(r'pub const (HTTP_ADDR|DEFAULT_HTTP_ADDR|DEFAULT_GRPC_ADDR): &str = "([^"]+)";')


@dataclass(frozen=True)
class ServiceAddrs:
    name: str  # folder under services/, e.g. "gateway"
    http_env: str  # e.g. "PECR_BIND_ADDR"
    http_port: int
    grpc_port: int

    @property
    def binary(self) -> str:
        return f"pecr-{self.name}"


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def service_addrs(root: Path, name: str) -> ServiceAddrs:
    """Raises ValueError when env.rs lacks one of the constants."""
    path = root / "services" / name / "src" / "env.rs"
    found = dict(CONST.findall(path.read_text(encoding="utf-8")))
    missing = {"HTTP_ADDR", "DEFAULT_HTTP_ADDR", "DEFAULT_GRPC_ADDR"} - found.keys()
    if missing:
        raise ValueError(f"{path}: no {', '.join(sorted(missing))}")
    return ServiceAddrs(
        name=name,
        http_env=found["HTTP_ADDR"],
        http_port=port_of(found["DEFAULT_HTTP_ADDR"]),
        grpc_port=port_of(found["DEFAULT_GRPC_ADDR"]),
    )
