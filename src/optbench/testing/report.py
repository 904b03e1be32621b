"""The outcome of a conformance check, and the report that gathers them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckResult:
    """One check: its name, whether it passed, and a message that says what it found.

    A skipped check (the backend is unavailable here, it declares no float32, ...) has
    `passed` True and `skipped` True: it fails nothing, and its message says why it was skipped.
    """

    name: str
    passed: bool
    message: str
    skipped: bool = False
    time_s: float = 0.0

    @property
    def outcome(self) -> str:
        return "skip" if self.skipped else "pass" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "skipped": self.skipped,
                "message": self.message, "time_s": round(self.time_s, 4)}


@dataclass
class Report:
    """All checks of one plugin object: `kind` "backend" or "optimizer", and its `name`."""

    kind: str
    name: str
    results: list[CheckResult] = field(default_factory=list)
    plugin: str | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks fail nothing)."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no check {name!r} in this report; its checks: "
                       f"{', '.join(r.name for r in self.results)}")

    def summary(self) -> str:
        failed = len(self.failures)
        skipped = sum(r.skipped for r in self.results)
        counts = f"{len(self.results)} check{'s' if len(self.results) != 1 else ''}"
        if failed:
            counts += f", {failed} failed"
        if skipped:
            counts += f", {skipped} skipped"
        verdict = "conforms" if self.ok else "does NOT conform"
        owner = f" (plugin {self.plugin})" if self.plugin else ""
        return f"{self.kind} {self.name}{owner} {verdict}: {counts}"

    def __str__(self) -> str:
        header = ("check", "result", "time", "details")
        rows = [(r.name, r.outcome, f"{r.time_s:.2f} s", r.message.splitlines() or [""])
                for r in self.results]
        widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(3)]
        indent = " " * (sum(widths) + 2 * 3)

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))

        out = [self.summary(), "", line(header[:3]) + "  " + header[3],
               "  ".join("-" * w for w in widths) + "  " + "-" * 7]
        for name, outcome, seconds, details in rows:
            out.append((line((name, outcome, seconds)) + "  " + details[0]).rstrip())
            out += [(indent + more).rstrip() for more in details[1:]]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "plugin": self.plugin, "ok": self.ok,
                "checks": [r.to_json() for r in self.results]}
