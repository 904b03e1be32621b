"""Click option types shared by the commands."""

from __future__ import annotations

import click

from optbench.errors import UsageError

FORMATS = click.Choice(["table", "json"])


class RegistryName(click.ParamType):
    """A backend, problem or optimizer name; checked and completed against the registry."""

    def __init__(self, kind: str, allow_all: bool = False, many: bool = False) -> None:
        self.kind = kind
        self.allow_all = allow_all
        self.many = many  # a comma-separated list of names; the value is then a list
        self.name = kind

    def _names(self) -> list[str]:
        from optbench.plugins import get_registry

        return get_registry().names(self.kind) + (["all"] if self.allow_all else [])

    def convert(self, value, param, ctx):
        if isinstance(value, list):  # already converted (a default given as a list)
            return value
        names = self._names()
        wanted = [v.strip() for v in value.split(",")] if self.many else [value]
        for name in wanted:
            if name not in names:
                self.fail(f"unknown {self.kind} {name!r}; available: {', '.join(names)}"
                          + (" (or a comma-separated list of them)" if self.many else ""),
                          param, ctx)
        if self.many and "all" in wanted and len(wanted) > 1:
            self.fail(f"'all' cannot be combined with other {self.kind} names", param, ctx)
        twice = sorted({n for n in wanted if wanted.count(n) > 1})
        if twice:
            self.fail(f"{value!r} names {self.kind} {twice[0]!r} twice", param, ctx)
        return wanted if self.many else value

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(n) for n in self._names() if n.startswith(incomplete)]


def parse_numbers(option: str, text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{option} {text!r} is not accepted: expected comma-separated numbers"
                         ) from None
