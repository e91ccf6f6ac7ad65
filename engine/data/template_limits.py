"""Limits on a chat template's work. A template comes with a model from anywhere, and Jinja's sandbox keeps it away
from Python's internals but not from work: nested loops over range(), a string doubled in a namespace, 'a' * 10**12.
Each render gets a budget (items iterated, time, output size, size of any string or list it builds) and a template
that exceeds it is refused with one sentence instead of holding a run at step 0.

The loop budget needs no cooperation from the template: every `for` loop's iterable is wrapped at compile time (on
Jinja's syntax tree) in `budgeted()`, which counts items and looks at the clock."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field

from engine.errors import StudioError

MAX_SOURCE_CHARS = 1_000_000  # a template's own text (real ones are a few kilobytes)
MAX_ITEMS = 2_000_000  # loop items per render (a long conversation's template iterates a few thousand)
MAX_SECONDS = 5.0  # per render (real renders take milliseconds)
MAX_OUTPUT_CHARS = 64_000_000  # per render
MAX_VALUE_CHARS = 16_000_000  # any string or list a template builds (doubling in a namespace, 'a' * n)
BUDGET_NAME = "studio_budgeted"  # the global the loops are wrapped in


class TemplateRefused(StudioError):
    """A template that went over a limit: the whole model's template is refused, not one conversation."""


def _too_big() -> TemplateRefused:
    return TemplateRefused(f"The chat template builds a value of more than {MAX_VALUE_CHARS // 1_000_000} million "
                           "characters; the studio refuses it (fix the template or choose another model).")


@dataclass
class Budget:
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    items: int = 0
    output: int = 0

    def tick(self) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise TemplateRefused(f"The chat template loops too much: more than {MAX_ITEMS:,} loop steps for one "
                                  "conversation; the studio refuses it (fix the template or choose another model).")
        if not self.items & 4095:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateRefused(f"The chat template did not finish one conversation in {MAX_SECONDS:g} s; the "
                                  "studio refuses it (fix the template or choose another model).")

    def add_output(self, chars: int) -> None:
        self.output += chars
        if self.output > MAX_OUTPUT_CHARS:
            raise TemplateRefused(f"The chat template writes more than {MAX_OUTPUT_CHARS // 1_000_000} million "
                                  "characters for one conversation; the studio refuses it.")
        self.check_time()


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


def budgeted(iterable):
    """The items of a template loop, counted against the render's budget."""
    budget = _current.get()
    for item in iterable:
        if budget is not None:
            budget.tick()
        yield item


def check_value(value) -> None:
    """Refuse a string or list over MAX_VALUE_CHARS that a template is about to build or keep."""
    if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE_CHARS:
        raise _too_big()


def safe_binop(left, operator: str, right):
    """* and ** and + as the sandbox calls them, refused before they would build something huge."""
    if operator == "**":
        if isinstance(right, int) and abs(right) > 1024 and isinstance(left, int | float) and abs(left) > 1:
            raise TemplateRefused("The chat template computes a power too large to hold; the studio refuses it.")
        return left ** right
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_VALUE_CHARS:
                raise _too_big()
        return left * right
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple) and \
            len(left) + len(right) > MAX_VALUE_CHARS:
        raise _too_big()
    return left + right


def wrap_loops(env, source: str):
    """The template's syntax tree with every for loop's iterable wrapped in budgeted()."""
    from jinja2 import nodes  # only rendering a chat template needs it

    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateRefused(f"The chat template is {len(source):,} characters long (the studio reads at most "
                              f"{MAX_SOURCE_CHARS:,}); it refuses it.")
    tree = env.parse(source)
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(BUDGET_NAME, "load"), [loop.iter], [], None, None)
    return tree


def render(template, **context) -> str:
    """The template rendered under a fresh budget."""
    budget = Budget()
    token = _current.set(budget)
    try:
        pieces = []
        for piece in template.generate(**context):
            budget.add_output(len(piece))
            pieces.append(piece)
        return "".join(pieces)
    finally:
        _current.reset(token)
