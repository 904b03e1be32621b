"""Click option types shared by the commands."""

from __future__ import annotations

import click

from optbench.errors import UsageError

FORMATS = click.Choice(["table", "json"])


class RegistryName(click.ParamType):
    """A backend, problem or optimizer name; checked and completed against the registry."""

    def __init__(self, kind: str, allow_all: bool = False) -> None:
        self.kind = kind
        self.allow_all = allow_all
        self.name = kind

    def _names(self) -> list[str]:
        from optbench.plugins import get_registry

        return get_registry().names(self.kind) + (["all"] if self.allow_all else [])

    def convert(self, value, param, ctx):
        names = self._names()
        if value not in names:
            self.fail(f"unknown {self.kind} {value!r}; available: {', '.join(names)}", param,
                      ctx)
        return value

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
