"""Many worker hosts on one machine: network namespaces, each a worker over its own link.

Run as root with `./dev bench-hosts` (see docs/performance.md, "Many hosts").
"""
