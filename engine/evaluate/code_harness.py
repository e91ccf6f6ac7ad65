"""The first code that runs inside the code-test sandbox (engine.evaluate.sandbox copies this file and code_wire.py
in, read-only).

    python -I -S /input/harness.py RESULT_FD TESTS_FD /input /work

It reads the tests from TESTS_FD (a file outside the sandbox's tree: the answer never sees them), sets the resource
limits, gives up root (a real unprivileged uid when it can, otherwise every capability) and makes itself
non-dumpable (so a process of the same uid can neither trace it nor open its descriptors through /proc). Then it
forks: the answer runs in the child, which first closes RESULT_FD and TESTS_FD; the tests run here and reach the
answer's functions only through code_wire's proxies, which carry plain data (see code_wire). Whatever the answer
does - write a forged result, return an object whose == is always true, patch builtins, exit early - happens in
its own process and cannot reach the verdict. One JSON line goes to RESULT_FD:
{"status": "passed"} or {"status": "failed", "where": "tests"|"answer", "line": N, "type": NAME}.
Nothing else leaves the sandbox: the studio builds the failure reason from the tests' own text and a builtin
exception name, never from what the answer prints or puts in an exception message.

Standard library only, no site-packages: it runs before anything untrusted, with Python started isolated.
"""

import builtins
import json
import os
import resource
import signal
import sys


def _load_wire():
    """code_wire.py from next to this file, by path: -I keeps this folder off sys.path, and it stays off."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("code_wire", os.path.join(os.path.dirname(__file__), "code_wire.py"))
    if spec is None or spec.loader is None:
        raise SystemExit(96)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


code_wire = _load_wire()

NOBODY = 65534
LIMITS = {  # seconds, bytes, counts: the same for every answer
    "RLIMIT_CPU": 11,
    "RLIMIT_AS": 1 << 30,
    "RLIMIT_FSIZE": 16 << 20,
    "RLIMIT_NOFILE": 64,
    "RLIMIT_NPROC": 64,
    "RLIMIT_CORE": 0,
}


def set_limits() -> None:
    for name, value in LIMITS.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def drop_root(weak: bool) -> str:
    """Give up every privilege before untrusted code runs; returns how. The weak mode (no sandbox, opt-in) keeps the
    studio's own user: uid 65534 could not even read a Python installed in root's home."""
    if os.getuid() != 0 or weak:
        return "user"
    try:  # real root (bubblewrap started by root): become nobody for good
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        return "nobody"
    except OSError:
        pass
    # root only inside a user namespace (unshare --map-root-user): nobody is not mapped, so drop every capability
    # instead; without them the process cannot undo its mounts or leave its root.
    drop_capabilities()
    return "no-capabilities"


def drop_capabilities() -> None:
    """Every capability gone for good (bounding set, effective, permitted) and no new privileges."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, pr_set_no_new_privs = 24, 38
    for cap in range(64):
        libc.prctl(pr_capbset_drop, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0 or libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise SystemExit(97)


def report(fd: int, result: dict) -> None:
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(result) + "\n")


def failure(err: BaseException) -> dict:
    """Where the error was raised (the last frame in the tests, else in the answer) and its builtin type name."""
    if hasattr(err, "studio_answer_line"):  # raised in the answer's process, carried back as a builtin name
        return {"status": "failed", "where": "answer", "line": err.studio_answer_line, "type": type(err).__name__}
    line = last_line(err, "<tests>")
    kind = type(err).__name__ if getattr(builtins, type(err).__name__, None) is type(err) else "Exception"
    return {"status": "failed", "where": "tests" if line else "answer", "line": line, "type": kind}


def undumpable() -> None:
    """PR_SET_DUMPABLE 0: the answer's process (same uid) cannot ptrace this one or open /proc/PID/fd/*."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:
        raise SystemExit(98)


def last_line(err: BaseException, source: str) -> int:
    """The line of the last traceback frame in `source` ("<tests>" or "<answer>"), 0 when none is."""
    line, tb = 0, err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == source:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def serve_answer(code: str, inp: int, out: int) -> None:
    """The answer's process: run the answer, say which names it defined, then answer the tests' requests."""
    objects: list = []

    def keep(value) -> int:
        objects.append(value)
        return len(objects) - 1

    def error(err: BaseException) -> dict:
        return {"error": type(err).__name__, "line": last_line(err, "<answer>")}

    scope = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(code, "<answer>", "exec"), scope)
    except BaseException as err:  # noqa: BLE001 - every outcome of untrusted code is a result
        code_wire.send(out, error(err))
        return
    names, modules = {}, {}
    for name, value in list(scope.items()):
        if name.startswith("__") or hasattr(builtins, name):
            continue
        if type(value) is type(os):
            modules[name] = value.__name__
            continue
        try:
            names[name] = code_wire.encode(value, keep)
        except code_wire.WireError:
            continue
    code_wire.send(out, {"names": names, "modules": modules})
    reader = code_wire.Reader(inp)
    while True:
        try:
            request = reader.read()
        except EOFError:
            return
        try:
            code_wire.send(out, {"value": code_wire.encode(answer_request(request, objects), keep)})
        except BaseException as err:  # noqa: BLE001 - (same)
            code_wire.send(out, error(err))


def answer_request(request: dict, objects: list):
    target = objects[int(request["target"])]
    args = code_wire.decode(request.get("args", []), objects.__getitem__)
    kwargs = code_wire.decode(request.get("kwargs", {"$dict": []}), objects.__getitem__)
    op = request["op"]
    if op == "call":
        return target(*args, **kwargs)
    if op == "getattr":
        return getattr(target, str(request["name"]))
    if op == "len":
        return len(target)
    if op == "list":
        return list(target)
    if op == "getitem":
        return target[args[0]]
    if op == "contains":
        return args[0] in target
    raise ValueError(op)


UNSAFE_MODULES = {"antigravity", "this", "turtle", "tkinter", "idlelib", "webbrowser"}


def tests_scope(remote) -> dict:
    """The tests' globals: the answer's names as plain data or handles, and the standard modules it imported."""
    import importlib

    manifest = remote.reader.read()
    if "error" in manifest:
        raise code_wire.builtin_error(manifest.get("error"), manifest.get("line"))
    scope = {"__name__": "__main__", "__builtins__": builtins}
    for name, value in dict(manifest.get("names", {})).items():
        if str(name).isidentifier() and not str(name).startswith("__") and not hasattr(builtins, str(name)):
            scope[str(name)] = code_wire.decode(value, remote.handle)
    for name, module in dict(manifest.get("modules", {})).items():
        if str(name).isidentifier() and module in sys.stdlib_module_names and module not in UNSAFE_MODULES:
            scope[str(name)] = importlib.import_module(module)
    return scope


def main() -> None:
    fd, tests_fd = int(sys.argv[1]), int(sys.argv[2])
    inputs, work, weak = sys.argv[3], sys.argv[4], sys.argv[5:] == ["--weak"]
    os.set_inheritable(fd, False)
    with os.fdopen(tests_fd, encoding="utf-8") as f:
        tests = f.read()
    os.chdir(work)
    os.environ.clear()
    os.environ.update(PATH="/usr/bin:/bin", HOME=work)
    with open(os.path.join(inputs, "answer.py"), encoding="utf-8") as f:
        answer = f.read()
    set_limits()
    drop_root(weak)
    undumpable()
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the answer's process: no result descriptor, no tests
        if os.getuid() == 0:  # (the weak mode run by root) root could still open this process's parent's descriptors
            drop_capabilities()
        os.close(fd)
        os.close(request_w)
        os.close(reply_r)
        serve_answer(answer, request_r, reply_w)
        os._exit(0)
    os.close(request_r)
    os.close(reply_w)
    try:
        scope = tests_scope(code_wire.Remote(request_w, reply_r))
        exec(compile(tests, "<tests>", "exec"), scope)
    except EOFError:  # the answer's process ended (exited early, or was killed by a limit)
        report(fd, {"status": "failed", "where": "answer", "line": 0, "type": "SystemExit"})
    except BaseException as err:  # noqa: BLE001 - every outcome of untrusted code is a result, including SystemExit
        report(fd, failure(err))
    else:
        report(fd, {"status": "passed"})
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


if __name__ == "__main__":
    main()
