"""What crosses between the answer's process and the tests' process inside the code-test sandbox: plain data only.

The answer runs in a process of its own (code_harness.py forks it); the tests call its functions through proxies.
Every value that crosses is rebuilt on the other side from JSON: numbers, strings, lists, tuples, dicts, sets,
bytes, None. An object with a rigged `==`, `__hash__` or `__bool__` cannot cross: anything that is not plain data
stays in the answer's process and the tests get a handle, which compares equal only to itself, hashes by identity
and refuses to be tested for truth. Method calls on a handle, len(), iteration and indexing run in the answer's
process and return plain data again.

Standard library only: it runs inside the sandbox, copied next to the harness.
"""

import base64
import builtins
import json
import os
from typing import Any

MAX_LINE = 16 << 20  # the longest message the tests' side reads
MAX_ITEMS = 1_000_000  # values in one message
MAX_DEPTH = 100


class WireError(Exception):
    """A value that cannot cross (too deep, too large, or a kind the wire does not carry)."""


def encode(value, keep=None, depth=0, count=None):
    """Plain data as tagged JSON. `keep` (the answer's side) turns anything else into a handle; without it such a value
    raises WireError."""
    count = count if count is not None else [0]
    count[0] += 1
    if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
        raise WireError("the value is too large or too deeply nested to cross")
    kind = type(value)  # exact types: a subclass could carry a rigged method
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return {"$float": repr(value)}  # nan and inf too
    parts = (lambda items: [encode(v, keep, depth + 1, count) for v in items])
    if kind is list:
        return parts(value)
    if kind is tuple:
        return {"$tuple": parts(value)}
    if kind in (set, frozenset):
        return {"$set" if kind is set else "$frozenset": parts(value)}
    if kind is dict:
        return {"$dict": [[encode(k, keep, depth + 1, count), encode(v, keep, depth + 1, count)]
                          for k, v in value.items()]}
    if kind in (bytes, bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii"), "mutable": kind is bytearray}
    if kind is complex:
        return {"$complex": [repr(value.real), repr(value.imag)]}
    if kind is range:
        return {"$range": [value.start, value.stop, value.step]}
    if keep is None:
        raise WireError(f"a {kind.__name__} cannot cross to the answer")
    return {"$handle": keep(value)}


def decode(data, resolve):
    """The value encode() described; handles become resolve(id)."""
    if isinstance(data, list):
        return [decode(v, resolve) for v in data]
    if not isinstance(data, dict):
        return data
    tag, body = next(iter(data.items())) if data else ("", None)
    body = _checked(tag, body)
    items = (lambda: [decode(v, resolve) for v in body])
    simple = {"$tuple": lambda: tuple(items()), "$set": lambda: set(items()), "$frozenset": lambda: frozenset(items()),
              "$float": lambda: float(body), "$complex": lambda: complex(float(body[0]), float(body[1])),
              "$range": lambda: range(*body), "$handle": lambda: resolve(body),
              "$dict": lambda: {decode(k, resolve): decode(v, resolve) for k, v in body}}
    if tag == "$bytes":
        raw = base64.b64decode(body)
        return bytearray(raw) if data.get("mutable") else raw
    if tag in simple:
        return simple[tag]()
    raise WireError("an unknown value came over the wire")


def _checked(tag: str, body) -> Any:
    """The body of a tagged value in the shape its tag needs (WireError otherwise)."""
    wanted = {"$float": str, "$bytes": str, "$handle": int}.get(tag, list)
    if not isinstance(body, wanted):
        raise WireError("a malformed value came over the wire")
    return body


def send(fd, message):
    data = (json.dumps(message) + "\n").encode("utf-8")
    while data:
        data = data[os.write(fd, data):]


class Reader:
    """Newline-delimited JSON from a pipe, each message at most MAX_LINE bytes."""

    def __init__(self, fd):
        self.fd, self.buffer = fd, b""

    def read(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise WireError("the answer sent a message too large to read")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError("the answer's process ended")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def builtin_error(name, line):
    """The builtin exception named (a generic Exception for any other name), marked as raised in the answer."""
    kind = getattr(builtins, str(name), None)
    if not (isinstance(kind, type) and issubclass(kind, Exception)) or kind is StopIteration:
        kind = Exception
    err = kind()
    setattr(err, "studio_answer_line", line if isinstance(line, int) else 0)  # noqa: B010 - on a builtin's instance
    return err


class Handle:
    """Something of the answer's that is not plain data: callable, indexable and iterable through the answer's
    process, equal only to itself, and never true or false."""

    __slots__ = ("_id", "_remote")

    def __init__(self, ident, remote):
        object.__setattr__(self, "_id", ident)
        object.__setattr__(self, "_remote", remote)

    def __call__(self, *args, **kwargs):
        return self._remote.ask("call", self._id, args=list(args), kwargs=kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._remote.ask("getattr", self._id, name=name)

    def __len__(self):
        return self._remote.ask("len", self._id)

    def __iter__(self):
        return iter(self._remote.ask("list", self._id))

    def __getitem__(self, key):
        return self._remote.ask("getitem", self._id, args=[key])

    def __contains__(self, item):
        return self._remote.ask("contains", self._id, args=[item])

    def __bool__(self):
        raise TypeError("a value of the answer that is not plain data has no truth value here")

    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return f"<answer object {self._id}>"


class Remote:
    """The tests' side of the pipe pair to the answer's process."""

    def __init__(self, to_answer, from_answer):
        self.out, self.reader, self.handles = to_answer, Reader(from_answer), {}

    def handle(self, ident):
        if ident not in self.handles:
            self.handles[ident] = Handle(ident, self)
        return self.handles[ident]

    def reply(self):
        message = self.reader.read()
        if not isinstance(message, dict):
            raise WireError("the answer sent something that is not a reply")
        if "error" in message:
            raise builtin_error(message.get("error"), message.get("line"))
        return decode(message.get("value"), self.handle)

    def ask(self, op, target, **fields):
        request = {"op": op, "target": target}
        for key, value in fields.items():
            request[key] = encode(value, keep=_handle_id) if key != "name" else str(value)
        send(self.out, request)
        return self.reply()


def _handle_id(value):
    """The tests may hand the answer back one of its own objects; anything else of theirs does not cross."""
    if isinstance(value, Handle):
        return object.__getattribute__(value, "_id")
    raise WireError(f"a {type(value).__name__} cannot cross to the answer")
