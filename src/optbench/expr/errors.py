"""ParseError: a refusal that points at the offending place in the text."""

from __future__ import annotations

from optbench.errors import UsageError


class ParseError(UsageError):
    """Text that the expression language refuses.

    `str(err)` shows the text with a caret under the offending place (for Python users);
    `err.one_line()` marks the place inline, for the one line the command line prints.
    """

    def __init__(self, reason: str, text: str, offset: int = 0, length: int = 1) -> None:
        self.reason = reason
        self.text = text
        self.offset = max(0, min(offset, len(text)))
        self.length = max(1, length)
        super().__init__(self.__str__())

    def _excerpt(self, width: int = 60) -> tuple[str, int]:
        # Long texts (a 1 MB expression) are shown around the offending place only.
        start = max(0, self.offset - width // 2)
        excerpt = self.text[start:start + width]
        prefix = "..." if start else ""
        suffix = "..." if start + width < len(self.text) else ""
        return prefix + excerpt.replace("\n", " ") + suffix, len(prefix) + self.offset - start

    def __str__(self) -> str:
        if not self.text:  # about the input as a whole (too many equations): no place
            return self.reason
        excerpt, column = self._excerpt()
        caret = " " * column + "^" * min(self.length, max(1, len(excerpt) - column))
        return f"{self.reason} (column {self.offset + 1})\n  {excerpt}\n  {caret}"

    def one_line(self) -> str:
        if not self.text:
            return self.reason
        excerpt, column = self._excerpt()
        end = column + self.length
        marked = f"{excerpt[:column]}>>{excerpt[column:end]}<<{excerpt[end:]}"
        return f"{self.reason} at column {self.offset + 1}: {marked}"
