"""One home for key names: tasks/keys.py, which the Lua scripts read as generated tables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from tasks import keys, scripts
from tasks.connection import get_redis

ROOT = Path(__file__).resolve().parent.parent
LUA = sorted((ROOT / "tasks" / "lua").glob("*.lua"))
#: Every key name a script passes to the key functions of prelude.lua.
NAMED = re.compile(r"\b(qkey|skey|jkey|gkey)\(([^()]*)\)")


def named_keys(source: str) -> set[tuple[str, str]]:
    found = set()
    for func, args in NAMED.findall(source):
        literals = re.findall(r"'([^']*)'", args)
        if func == "jkey" or not literals:
            continue  # a job key, or a name held in a variable (checked at run time below)
        found.add((func, literals[0]))
    return found


def test_it_finds_the_key_names_the_scripts_use():
    """The scan below is not vacuous: it sees the names the scripts really use."""
    used = set().union(*(named_keys(path.read_text()) for path in LUA))
    assert {("qkey", "lock"), ("skey", "active"), ("gkey", "lease")} <= used


@pytest.mark.parametrize("path", LUA, ids=lambda p: p.name)
def test_every_key_a_script_names_is_in_the_schema(path):
    for func, name in named_keys(path.read_text()):
        table = keys.GLOBAL_KEYS if func == "gkey" else keys.QUEUE_KEYS
        assert name in table, f"{path.name}: {func}(…, {name!r}) is not in tasks/keys.py"


@pytest.mark.parametrize("path", LUA, ids=lambda p: p.name)
def test_no_script_spells_a_key_suffix_itself(path):
    """Key suffixes come from the generated tables, never from a literal like ':lock:'."""
    suffixes = {s.strip(":") for s in (*keys.QUEUE_KEYS.values(), *keys.GLOBAL_KEYS.values())}
    literals = re.findall(r"'([^']*)'", path.read_text())
    spelled = [lit for lit in literals if re.fullmatch(r":?[a-z_]+:?", lit) and ":" in lit]
    assert not [lit for lit in spelled if lit.strip(":") in suffixes], path.name


def test_a_script_naming_an_unknown_key_fails_loudly():
    """A name missing from the schema is an error in Redis, not a key named '…nil'."""
    lua = keys.lua_header() + (scripts.LUA_DIR / "prelude.lua").read_text()
    with pytest.raises(ResponseError, match="unknown queue key no-such-key"):
        get_redis().eval(lua + "\nreturn qkey('jy:', 'q', 'no-such-key')", 0)
    assert get_redis().eval(lua + "\nreturn qkey('jy:', 'q', 'lock', 'id1')", 0) == b"jy:q:lock:id1"


def test_python_and_lua_build_the_same_names():
    lua = keys.lua_header() + (scripts.LUA_DIR / "prelude.lua").read_text()
    p = keys.prefix()
    pairs = [
        (f"return jkey('{p}', 'default', 'a1')", keys.job("default", "a1")),
        (f"return skey('{p}', 'default', 'wait')", keys.state("default", "waiting")),
        (f"return skey('{p}', 'default', STATE_SET['paused'])", keys.state("default", "paused")),
        (f"return qkey('{p}', 'default', 'stats', 7)", keys.stats("default", 7)),
        (f"return qkey('{p}', 'default', 'events')", keys.events("default")),
        (f"return gkey('{p}', 'lease', 'beat')", keys.lease("beat")),
    ]
    for body, expected in pairs:
        assert get_redis().eval(f"{lua}\n{body}", 0).decode() == expected


def _python_files() -> list[Path]:
    return [p for p in (ROOT / "tasks").rglob("*.py") if "migrations" not in p.parts]


def test_no_python_module_but_keys_builds_a_registry_key():
    """Key suffixes appear as string constants in tasks/keys.py alone; and no module but
    tasks/scripts.py runs a script by name."""
    # The suffixes a job id or a minute follows: ':lock:', ':stats:', 'lease:', ...
    suffixes = [s for s in (*keys.QUEUE_KEYS.values(), *keys.GLOBAL_KEYS.values()) if s[-1] == ":"]
    offenders = []
    for path in _python_files():
        if path.name == "keys.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)
        }  # fmt: skip
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and any(s in text for s in suffixes):
                offenders.append(f"{where} {text!r}")
            if (
                isinstance(node, ast.Attribute) and node.attr in ("run", "_run")
                and isinstance(node.value, ast.Name) and node.value.id == "scripts"
            ):  # fmt: skip
                offenders.append(f"{where} scripts.{node.attr}")
    assert not offenders
