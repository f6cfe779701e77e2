"""Names and addresses of the simulated hosts (pure: nothing here touches the system).

Host N (1-based) is the network namespace `hzh-hostN`, joined to the machine by the veth pair
`hzhNo` (outside, address 10.77.N.1) and `hzhNi` (inside, 10.77.N.2). PostgreSQL listens on
every outside address, so each host reaches it over its own link. Everything the harness
creates starts with `PREFIX`, which is how a later run finds leftovers of a crashed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PREFIX: Final = "hzh"
MAX_HOSTS: Final = 250
PREFIX_LEN: Final = 24


@dataclass(frozen=True, slots=True)
class Host:
    index: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_HOSTS:
            raise ValueError(f"host index must be 1 to {MAX_HOSTS}, got {self.index}")

    @property
    def name(self) -> str:
        return f"host{self.index}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def veth_outside(self) -> str:
        return f"{PREFIX}{self.index}o"

    @property
    def veth_inside(self) -> str:
        return f"{PREFIX}{self.index}i"

    @property
    def outside_address(self) -> str:
        """The machine's end of the link: PostgreSQL listens here."""
        return f"10.77.{self.index}.1"

    @property
    def inside_address(self) -> str:
        return f"10.77.{self.index}.2"


def hosts(count: int) -> list[Host]:
    return [Host(index) for index in range(1, count + 1)]


def is_ours(name: str) -> bool:
    """Whether a namespace or link name is one this harness creates."""
    return name.startswith(PREFIX)


def listen_addresses(all_hosts: list[Host]) -> str:
    """PostgreSQL's listen_addresses: loopback (the harness) and each host's outside end."""
    return ",".join(["127.0.0.1", *(h.outside_address for h in all_hosts)])


def hba_lines(all_hosts: list[Host], user: str) -> list[str]:
    """pg_hba.conf entries: the harness on loopback, each host from its inside address only."""
    lines = [f"host all {user} 127.0.0.1/32 trust"]
    lines += [f"host all {user} {h.inside_address}/32 trust" for h in all_hosts]
    return lines


def database_url(address: str, port: int, user: str, dbname: str) -> str:
    return f"postgresql://{user}@{address}:{port}/{dbname}"
