"""Building and tearing down the hosts' namespaces and links with `ip` (root only).

`clean()` removes everything named with `naming.PREFIX`, including what a crashed run left,
after killing (by pid) the processes still inside those namespaces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from benchmarks.hosts.naming import PREFIX_LEN, Host, is_ours


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def create(host: Host) -> None:
    """The namespace, its veth pair, addresses, and the links up."""
    ip("netns", "add", host.netns)
    ip("link", "add", host.veth_outside, "type", "veth", "peer", "name", host.veth_inside)
    ip("link", "set", host.veth_inside, "netns", host.netns)
    ip("addr", "add", f"{host.outside_address}/{PREFIX_LEN}", "dev", host.veth_outside)
    ip("link", "set", host.veth_outside, "up")
    inside = ("netns", "exec", host.netns, "ip")
    ip(*inside, "addr", "add", f"{host.inside_address}/{PREFIX_LEN}", "dev", host.veth_inside)
    ip(*inside, "link", "set", host.veth_inside, "up")
    ip(*inside, "link", "set", "lo", "up")


def set_link(host: Host, *, up: bool) -> None:
    """Cut the host off (`down`) or reconnect it (`up`), on the machine's end of its link."""
    ip("link", "set", host.veth_outside, "up" if up else "down")


def exec_argv(host: Host, argv: list[str]) -> list[str]:
    """`argv` run inside the host's namespace (`ip netns exec` execs it: the pid is the same)."""
    return ["ip", "netns", "exec", host.netns, *argv]


def our_namespaces() -> list[str]:
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    return [name for name in names if is_ours(name)]


def our_links() -> list[str]:
    links = []
    for line in ip("-o", "link", "show").splitlines():
        # "12: hzh1o@if11: <BROADCAST,...": the name before any "@"
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        if is_ours(name):
            links.append(name)
    return links


def _kill_inside(netns: str) -> None:
    pids = [int(p) for p in ip("netns", "pids", netns, check=False).split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = [int(p) for p in ip("netns", "pids", netns, check=False).split()]
        time.sleep(0.05)


def clean() -> list[str]:
    """Delete every namespace and link of ours (killing processes left inside); what it removed."""
    removed = []
    for netns in our_namespaces():
        _kill_inside(netns)
        ip("netns", "del", netns, check=False)
        removed.append(netns)
    for link in our_links():  # deleting one end of a veth pair deletes both
        ip("link", "del", link, check=False)
        removed.append(link)
    return removed
