"""Every ``pharmafl <command> [<sub-command>]`` named to a user exists.

Fix messages and docs tell users what to run; a renamed or imagined command (``pharmafl
model baseline`` for ``pharmafl baseline``) sends them nowhere. Checked against the typer
app's registered commands:

- in the string literals of ``pharmafl/`` and ``flows/``: what is code-formatted (between
  backticks, docstrings included), and the whole text of error messages and ``fix=`` texts
  (an ``...Error(...)`` call's arguments, any ``fix=`` keyword);
- in ``README.md`` and ``docs/*.md``: code spans and shell code blocks.

Prose such as "this pharmafl version" or "not a pharmafl envelope" is told apart by the word
before ``pharmafl`` (an article, a determiner, ``from``, ...).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import typer.main

from pharmafl.cli.main import app

ROOT = Path(__file__).resolve().parents[3]

_REF = re.compile(r"(?<![\w.-])pharmafl ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?")
#: Words after which ``pharmafl`` is a noun's qualifier, not a command line.
_PROSE = re.compile(
    r"(?:\b(?:a|an|the|this|that|its|your|each|every|any|one|running|from|import|of)|#)\s*$"
)
_CODE_SPAN = re.compile(r"`+([^`\n]+)`+")
_SHELL_FENCES = {"", "bash", "sh", "shell", "console", "text"}


def _commands() -> dict[str, set[str] | None]:
    """Each top-level command: its sub-commands (a group) or ``None`` (a command)."""
    root = typer.main.get_command(app)  # a group: typer's (vendored) click Group
    return {
        name: set(cmd.commands) if hasattr(cmd, "commands") else None
        for name, cmd in root.commands.items()  # type: ignore[attr-defined]
    }


def _references(text: str) -> Iterator[str]:
    for m in _REF.finditer(text):
        if not _PROSE.search(text[: m.start()]):
            yield m.group(0)


def _problem(ref: str, commands: dict[str, set[str] | None]) -> str | None:
    words = ref.split()[1:]
    subs = commands.get(words[0], set())
    if words[0] not in commands:
        return f"no command {words[0]!r}"
    if subs is not None and len(words) > 1 and words[1] not in subs:
        return f"{words[0]!r} has no sub-command {words[1]!r} (it has {sorted(subs)})"
    return None


def _instruction_strings(tree: ast.AST) -> set[int]:
    """ids of the string constants inside error constructors' arguments and ``fix=`` texts."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        parts: list[ast.AST] = [k.value for k in node.keywords if k.arg == "fix"]
        if name.endswith("Error"):
            parts += [*node.args, *(k.value for k in node.keywords)]
        ids |= {id(n) for part in parts for n in ast.walk(part) if isinstance(n, ast.Constant)}
    return ids


def _python_texts() -> Iterator[tuple[str, str]]:
    for folder in ("pharmafl", "flows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            instructions = _instruction_strings(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    yield from ((where, span) for span in _CODE_SPAN.findall(node.value))
                    if id(node) in instructions:
                        yield where, node.value


def _markdown_texts() -> Iterator[tuple[str, str]]:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        fence: str | None = None
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{lineno}"
            if line.lstrip().startswith("```"):
                fence = None if fence is not None else line.strip().strip("`").strip()
            elif fence is not None:
                if fence in _SHELL_FENCES:
                    yield where, line
            else:
                yield from ((where, span) for span in _CODE_SPAN.findall(line))


def _bad_references(texts: Iterator[tuple[str, str]]) -> list[str]:
    commands = _commands()
    return sorted(
        f"{where}: {ref!r}: {problem}"
        for where, text in texts
        for ref in _references(text)
        if (problem := _problem(ref, commands)) is not None
    )


def test_every_command_named_in_code_and_messages_exists() -> None:
    assert _bad_references(_python_texts()) == []


def test_every_command_named_in_the_docs_exists() -> None:
    assert _bad_references(_markdown_texts()) == []


def test_the_check_finds_a_wrong_command_and_passes_prose() -> None:
    texts = [
        ("fix", "train the local model first (`pharmafl model baseline PARTNER_DIR`)."),
        ("fix", "run pharmafl keys sign first."),
        ("prose", "retrain it with this pharmafl version; not a pharmafl envelope."),
        ("ok", "run `pharmafl baseline DIR`, then pharmafl keys roster --help."),
    ]
    bad = _bad_references(iter(texts))
    assert len(bad) == 2 and all(b.startswith("fix: ") for b in bad)
    assert any("no command 'model'" in b for b in bad)
    assert any("no sub-command 'sign'" in b for b in bad)
