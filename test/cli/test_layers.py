#!/usr/bin/env python3
"""The include graph runs one way: cmd -> plugins -> core.

Reads every #include "..." line of the C++ sources under cmd/, plugins/ and core/ and
fails when core includes cmd/ or plugins/, when plugins include cmd/, or when modules
include each other in a cycle (a module is a .hpp/.cpp pair: cmd/cli.cpp including
cmd/help.hpp while cmd/help.cpp includes cmd/cli.hpp is a cycle).

Usage: test_layers.py [SOURCE_ROOT]   (default: the repository holding this file)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LAYERS = ('cmd', 'plugins', 'core')  # each may include only the ones after it
INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.M)


def module(path: str) -> str:
    return re.sub(r'\.(hpp|cpp|h)$', '', path)


def include_graph(root: Path) -> dict:
    """{module: {(included module, 'file:line'), ...}} for the project's own includes."""
    graph: dict = {}
    for layer in LAYERS:
        for f in sorted((root / layer).rglob('*')):
            if f.suffix not in ('.hpp', '.cpp', '.h'):
                continue
            rel = f.relative_to(root).as_posix()
            text = f.read_text(errors='replace')
            edges = graph.setdefault(module(rel), set())
            for m in INCLUDE.finditer(text):
                target = m.group(1)
                if target.split('/')[0] not in LAYERS:
                    continue  # generated headers (pgrm_config.h, schema/) and system ones
                line = text.count('\n', 0, m.start()) + 1
                if module(target) != module(rel):
                    edges.add((module(target), f'{rel}:{line}'))
    return graph


def layer_violations(graph: dict) -> list:
    out = []
    for mod, edges in graph.items():
        rank = LAYERS.index(mod.split('/')[0])
        for target, where in sorted(edges):
            if LAYERS.index(target.split('/')[0]) < rank:
                out.append(f'{where}: {mod.split("/")[0]}/ includes "{target}" from a layer above it')
    return out


def cycles(graph: dict) -> list:
    """Each cycle once, as a list of modules, found by depth-first search."""
    found, seen_keys = [], set()
    state: dict = {}
    stack: list = []

    def visit(mod: str):
        state[mod] = 'open'
        stack.append(mod)
        for target, _ in sorted(graph.get(mod, ())):
            if state.get(target) == 'open':
                cycle = stack[stack.index(target):]
                key = frozenset(cycle)
                if key not in seen_keys:
                    seen_keys.add(key)
                    found.append(cycle + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[mod] = 'done'

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)
    return found


def main(argv: list) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2]
    graph = include_graph(root)
    if not any(m.startswith('cmd/') for m in graph) or not any(m.startswith('core/') for m in graph):
        print(f'no cmd/ or core/ sources under {root}', file=sys.stderr)
        return 1
    problems = layer_violations(graph)
    problems += ['include cycle: ' + ' -> '.join(c) for c in cycles(graph)]
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f'ok - {len(graph)} modules, includes run cmd -> plugins -> core without cycles')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
