"""A plugin that raises on import, on purpose.

It exists to prove that one broken plugin never stops optbench: `optbench plugins` lists it
with this error, and every command keeps working. Do not "fix" it.
"""

raise ImportError(
    "optbench-broken fails to import on purpose: it proves that a broken plugin is reported "
    "by 'optbench plugins' and skipped, never fatal"
)
