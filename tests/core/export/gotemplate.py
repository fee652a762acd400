"""A tiny Go text/template renderer for the subset Ollama TEMPLATEs use (tests only).

Supported: text, ``{{ pipeline }}`` with ``{{-``/``-}}`` trimming, ``.Field``,
``$.Field``, ``$var``, string/number/bool literals, parenthesised calls,
``if``/``else if``/``else``/``end``, ``range PIPE`` and
``range $i, $x := PIPE``, ``$x := v`` and ``$x = v``, and the functions
``eq ne not and or len slice``.  Anything else raises, so a template that uses
more than this cannot pass unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    kind: str  # "expr", "decl", "assign"
    expr: Any
    var: str | None = None


@dataclass
class _If:
    branches: list[tuple[Any, list]] = field(default_factory=list)
    else_body: list | None = None


@dataclass
class _Range:
    expr: Any
    vars: list[str]
    body: list = field(default_factory=list)


def _lex(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    pending_trim = False
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if pending_trim:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            out.append(("text", text))
        out.append(("action", m.group(2).strip()))
        pending_trim = bool(m.group(3))
        pos = m.end()
    text = src[pos:]
    if pending_trim:
        text = text.lstrip()
    if text:
        out.append(("text", text))
    return out


_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|:=|=|,|[^\s(),]+)')


def _tokens(s: str) -> list[str]:
    toks, pos = [], 0
    s = s.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            raise ValueError(f"cannot tokenize {s[pos:]!r}")
        toks.append(m.group(1))
        pos = m.end()
    return toks


def _parse_expr(toks: list[str]) -> Any:
    """A command: operand, or function name followed by arguments."""
    items, i = _parse_seq(toks, 0)
    if i != len(toks):
        raise ValueError(f"unexpected {toks[i:]}")
    return items


def _parse_seq(toks: list[str], i: int) -> tuple[Any, int]:
    args = []
    while i < len(toks) and toks[i] != ")":
        if toks[i] == "(":
            sub, i = _parse_seq(toks, i + 1)
            if i >= len(toks) or toks[i] != ")":
                raise ValueError("unbalanced parentheses")
            args.append(("call", sub))
            i += 1
        else:
            args.append(("atom", toks[i]))
            i += 1
    return args, i


def _parse(tokens: list[tuple[str, str]]) -> list:
    root: list = []
    stack: list[Any] = []
    cur = root

    for kind, val in tokens:
        if kind == "text":
            cur.append(_Text(val))
            continue
        toks = _tokens(val)
        head = toks[0] if toks else ""
        if head == "if":
            node = _If()
            node.branches.append((_parse_expr(toks[1:]), []))
            cur.append(node)
            stack.append((node, cur))
            cur = node.branches[-1][1]
        elif head == "else" and len(toks) > 1 and toks[1] == "if":
            node = stack[-1][0]
            node.branches.append((_parse_expr(toks[2:]), []))
            cur = node.branches[-1][1]
        elif head == "else":
            node = stack[-1][0]
            node.else_body = []
            cur = node.else_body
        elif head == "range":
            rest = toks[1:]
            names: list[str] = []
            if ":=" in rest:
                k = rest.index(":=")
                names = [t for t in rest[:k] if t != ","]
                rest = rest[k + 1 :]
            node = _Range(_parse_expr(rest), names)
            cur.append(node)
            stack.append((node, cur))
            cur = node.body
        elif head == "end":
            _node, cur = stack.pop()
        elif len(toks) >= 3 and toks[0].startswith("$") and toks[1] in (":=", "="):
            cur.append(
                _Action("decl" if toks[1] == ":=" else "assign", _parse_expr(toks[2:]), toks[0])
            )
        else:
            cur.append(_Action("expr", _parse_expr(toks)))
    if stack:
        raise ValueError("missing {{ end }}")
    return root


def _truth(v: Any) -> bool:
    return not (v is None or v is False or v == 0 or v == "" or v == [] or v == {})


class _Scope:
    def __init__(self, dot: Any, root: Any):
        self.frames: list[dict[str, Any]] = [{"$": root}]
        self.dot = dot

    def lookup(self, name: str) -> Any:
        for f in reversed(self.frames):
            if name in f:
                return f[name]
        raise KeyError(f"undefined variable {name}")

    def assign(self, name: str, v: Any) -> None:
        for f in reversed(self.frames):
            if name in f:
                f[name] = v
                return
        raise KeyError(f"assignment to undeclared variable {name}")


def _field(obj: Any, path: list[str]) -> Any:
    for p in path:
        if not p:
            continue
        obj = obj.get(p) if isinstance(obj, dict) else getattr(obj, p)
    return obj


def _atom(a: str, sc: _Scope) -> Any:
    if a.startswith('"'):
        return bytes(a[1:-1], "utf-8").decode("unicode_escape")
    if a in ("true", "false"):
        return a == "true"
    if re.fullmatch(r"-?\d+", a):
        return int(a)
    if a == ".":
        return sc.dot
    if a.startswith("."):
        return _field(sc.dot, a[1:].split("."))
    if a.startswith("$"):
        name, *path = a.split(".")
        return _field(sc.lookup(name), path)
    raise ValueError(f"unknown operand {a!r}")


_FUNCS = {"eq", "ne", "not", "and", "or", "len", "slice"}


def _eval(expr: list, sc: _Scope) -> Any:
    if not expr:
        raise ValueError("empty command")
    kind, head = expr[0]
    if kind == "atom" and head in _FUNCS:
        args = expr[1:]

        def val(x):
            return _eval([x], sc) if x[0] == "atom" else _eval(x[1], sc)

        if head == "and":
            v = True
            for a in args:
                v = val(a)
                if not _truth(v):
                    return v
            return v
        if head == "or":
            v = False
            for a in args:
                v = val(a)
                if _truth(v):
                    return v
            return v
        vals = [val(a) for a in args]
        if head == "eq":
            return any(vals[0] == v for v in vals[1:])
        if head == "ne":
            return vals[0] != vals[1]
        if head == "not":
            return not _truth(vals[0])
        if head == "len":
            return len(vals[0])
        if head == "slice":
            lo = vals[1] if len(vals) > 1 else None
            hi = vals[2] if len(vals) > 2 else None
            return vals[0][lo:hi]
    if len(expr) != 1:
        raise ValueError(f"cannot call {head!r}")
    return _atom(head, sc) if kind == "atom" else _eval(head, sc)


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _run(nodes: list, sc: _Scope, out: list[str]) -> None:
    for n in nodes:
        if isinstance(n, _Text):
            out.append(n.text)
        elif isinstance(n, _Action):
            v = _eval(n.expr, sc)
            if n.kind == "decl":
                sc.frames[-1][n.var] = v
            elif n.kind == "assign":
                sc.assign(n.var, v)
            else:
                out.append(_show(v))
        elif isinstance(n, _If):
            for cond, body in n.branches:
                if _truth(_eval(cond, sc)):
                    sc.frames.append({})
                    _run(body, sc, out)
                    sc.frames.pop()
                    break
            else:
                if n.else_body is not None:
                    sc.frames.append({})
                    _run(n.else_body, sc, out)
                    sc.frames.pop()
        elif isinstance(n, _Range):
            seq = _eval(n.expr, sc)
            saved = sc.dot
            for i, item in enumerate(seq or []):
                frame: dict[str, Any] = {}
                if len(n.vars) == 1:
                    frame[n.vars[0]] = item
                elif len(n.vars) == 2:
                    frame[n.vars[0]] = i
                    frame[n.vars[1]] = item
                sc.frames.append(frame)
                sc.dot = item
                _run(n.body, sc, out)
                sc.frames.pop()
            sc.dot = saved


def render(template: str, data: dict[str, Any]) -> str:
    nodes = _parse(_lex(template))
    sc = _Scope(data, data)
    out: list[str] = []
    _run(nodes, sc, out)
    return "".join(out)


def ollama_render(template: str, messages: list[dict[str, str]], system: str | None = None) -> str:
    """Render like Ollama's chat endpoint: Modelfile SYSTEM prepended when the chat has none."""
    msgs = [dict(m) for m in messages]
    if system and not any(m["role"] == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": system})
    joined = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
    data = {
        "System": joined,
        "Messages": [{"Role": m["role"], "Content": m["content"]} for m in msgs],
        "Prompt": "",
        "Response": "",
    }
    return render(template, data)
