"""Kontinuum functions in Python: the handler protocol, standard library only.

    import kontinuum

    @kontinuum.function("py.add")
    def add(a, b):
        return a + b

    if __name__ == "__main__":
        kontinuum.serve()

Run it under a worker: ``kontinuum-worker --server URL --handler 'python3 app.py'``.
The worker leases tasks, heartbeats, batches and hands work back on
SIGTERM; this module only runs functions. The protocol it speaks is
docs/handlers.md (version 1): JSON lines on fds 3 (in) and 4 (out), so
print() and anything else written to stdout or stderr goes to the worker's
log, never into the protocol.

A function gets its arguments by name. Arguments it does not declare are
left out (unless it takes ``**kwargs``), so any function can be mapped
(``item``) or be a continuation (``result``, ``error``). A first parameter
named ``ctx`` receives the call's :class:`Ctx`. FnRef values
(``{"$fn": ...}``) arrive as :class:`FnRef` objects; return FnRefs (or
decorated functions) and they travel as function values.

Raising an exception fails the call, retryable (the task is retried up to
its ``retry.maxAttempts``) with ``"ExceptionType: message"``; raise
:class:`Permanent` when running again cannot help.
"""

import collections
import hashlib
import inspect
import json
import math
import os
import re
import select
import sys
import time
import traceback

PROTOCOL = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
#: Longest error message sent; the rest is cut (the traceback is in the log).
MAX_MESSAGE = 8192
#: A call shorter than this (seconds) lets the replies before the next call
#: of its function wait for it, to be written together.
FAST = 0.0002


class FunctionError(Exception):
    """Fails a call with this message; ``retryable`` says whether to retry."""

    def __init__(self, message, retryable=True):
        super().__init__(message)
        self.message = str(message)
        self.retryable = retryable


class Permanent(FunctionError):
    """Fails a call for good: running it again with the same arguments cannot help."""

    def __init__(self, message):
        super().__init__(message, retryable=False)


# --- functions as values ---------------------------------------------------


class FnRef:
    """A function name plus bound arguments: a call, a closure, a value.

    Equal FnRefs have the same stable id, computed as the engine does
    (sha256 of RFC 8785 canonical JSON), whoever built them.
    """

    __slots__ = ("function", "args")

    def __init__(self, function, args=None):
        if not isinstance(function, str) or not _NAME.match(function):
            raise ValueError("%r is not a function name" % (function,))
        self.function = function
        self.args = dict(args or {})

    def bind(self, **more):
        """A new FnRef with more arguments bound; binding a name twice is an error."""
        for name in more:
            if name in self.args:
                raise ValueError("argument '%s' is already bound" % name)
        args = dict(self.args)
        args.update(more)
        return FnRef(self.function, args)

    def to_call(self):
        """The plain ``{function, args}`` form a Task's ``call`` takes."""
        return {"function": self.function, "args": self.args}

    def to_json(self):
        """The value form: ``{"$fn": {function, args}}``."""
        return {"$fn": self.to_call()}

    def stable_id(self):
        text = canonical_json(_plain({"function": self.function, "args": self.args}))
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __eq__(self, other):
        return isinstance(other, FnRef) and self.stable_id() == other.stable_id()

    def __hash__(self):
        return hash(self.stable_id())

    def __repr__(self):
        return "FnRef(%r, %r)" % (self.function, self.args)


def _plain(value):
    """``value`` with FnRefs (and decorated functions) in their JSON form."""
    if isinstance(value, (FnRef, Function)):
        return _plain(value.to_json())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def canonical_json(value):
    """RFC 8785: sorted keys (by UTF-16 code units), no blanks, ECMAScript numbers."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _es_number(float(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical_json(value[k]) for k in keys) + "}"
    raise TypeError("%s is not JSON" % type(value).__name__)


def _es_number(f):
    """A double as ECMAScript's Number.prototype.toString writes it."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError("%r is not a JSON number" % f)
    if f == 0:
        return "0"
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    sign = "-" if f < 0 else ""
    mantissa, _, exp = repr(abs(f)).partition("e")
    whole, _, frac = mantissa.partition(".")
    all_digits = whole + frac
    lead = len(all_digits) - len(all_digits.lstrip("0"))
    digits = all_digits.lstrip("0").rstrip("0")
    # value = 0.DIGITS x 10^n
    n = len(whole) - lead + (int(exp) if exp else 0)
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    m = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + m + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _decode_fn(obj):
    if len(obj) == 1 and "$fn" in obj:
        inner = obj["$fn"]
        if isinstance(inner, dict) and isinstance(inner.get("function"), str):
            return FnRef(inner["function"], inner.get("args") or {})
    return obj


def _loads(line):
    if b'"$fn"' in line:
        return json.loads(line, object_hook=_decode_fn)
    return json.loads(line)


def _default(obj):
    if isinstance(obj, (FnRef, Function)):
        return obj.to_json()
    if isinstance(obj, (set, frozenset)):
        raise TypeError("a %s is not JSON (make it a list)" % type(obj).__name__)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


# One encoder for every line: json.dumps with options builds one per call.
_ENCODER = json.JSONEncoder(default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def dumps(value):
    """One protocol line: compact JSON, FnRefs as values, no NaN, UTF-8, newline."""
    return _ENCODER.encode(value).encode("utf-8") + b"\n"


# --- registering functions -------------------------------------------------


class Function:
    """A decorated function: callable as before, and a value (``ref``)."""

    def __init__(self, name, fn):
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError("%r is not a function name (letters, digits, '_', '.', '-')" % (name,))
        self.name = name
        self.fn = fn
        params = list(inspect.signature(fn).parameters.values())
        self.wants_ctx = bool(params) and params[0].name == "ctx"
        if self.wants_ctx:
            params = params[1:]
        for p in params:
            if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL):
                raise TypeError("%s: parameter '%s' cannot be given by name, and arguments arrive by name" % (name, p.name))
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        self.takes_all = any(p.kind == p.VAR_KEYWORD for p in params)
        self.names = [p.name for p in named]
        self.required = [p.name for p in named if p.default is p.empty]

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def ref(self, **bound):
        """An FnRef of this function with ``bound`` arguments (a closure)."""
        return FnRef(self.name, bound)

    def to_json(self):
        return self.ref().to_json()

    def arguments(self, args, ctx):
        """The keyword arguments of one call; a missing one is a Permanent error."""
        for name in self.required:
            if name not in args:
                raise Permanent("missing argument '%s'" % name)
        if self.takes_all:
            kwargs = dict(args)
        else:
            kwargs = {n: args[n] for n in self.names if n in args}
        if self.wants_ctx:
            if "ctx" in kwargs:
                raise Permanent("argument 'ctx' is taken by the call's context; rename it")
            kwargs["ctx"] = ctx
        return kwargs

    def __repr__(self):
        return "<kontinuum function %s>" % self.name


_registry = {}


def function(name=None):
    """Registers a function: ``@function("py.add")``, or ``@function`` for its own name."""

    def register(fn, name=name):
        f = Function(name or fn.__name__, fn)
        if f.name in _registry:
            raise ValueError("function '%s' is registered twice" % f.name)
        _registry[f.name] = f
        return f

    if callable(name):
        fn, name = name, None
        return register(fn)
    return register


def registered():
    """The functions registered so far, by name."""
    return dict(_registry)


def call(fnref, **more):
    """Calls an FnRef of a function registered in this process, here and
    now, with ``more`` arguments bound (the seed's ``x()``): no task, no
    round trip. A function another worker serves cannot be called so:
    spawn it (``ctx.spawn``) or add it as a child (``ctx.child``)."""
    ref = _as_ref(fnref).bind(**more)
    f = _registry.get(ref.function)
    if f is None:
        raise Permanent("function '%s' is not registered in this handler; spawn it instead" % ref.function)
    if f.wants_ctx:
        raise Permanent("function '%s' takes a ctx: spawn it instead of calling it inline" % ref.function)
    return f.fn(**f.arguments(ref.args, None))


# --- a running call --------------------------------------------------------


class Ctx:
    """What a running call can ask of the worker: children, tasks, progress."""

    def __init__(self, handler, call_id, function, attempt, deadline):
        self._handler = handler
        self.id = call_id
        self.function = function
        self.attempt = attempt
        #: When this attempt times out, in seconds since the epoch (None: no timeout).
        self.deadline = deadline / 1000.0 if deadline is not None else None

    def remaining(self):
        """Seconds left before the attempt times out, or None."""
        return None if self.deadline is None else self.deadline - time.time()

    @property
    def cancelled(self):
        """True once the worker stopped waiting for this call (timeout, cancellation)."""
        return self._handler.is_cancelled(self.id)

    def progress(self, units):
        """Units of work done so far in this attempt (rolls up the task's tree)."""
        self._handler.send({"type": "progress", "id": self.id, "units": int(units)})

    def child(self, call, weight=1):
        """Adds a child to this call's node: its value joins the node's reducer. Returns its node id."""
        return self._handler.request(self.id, {"type": "child", "call": _as_ref(call).to_call(), "weight": int(weight)})

    def spawn(self, call, **settings):
        """Starts an independent task (``settings``: a Task spec's fields, e.g.
        ``delay="5s"``, ``retry={"maxAttempts": 5}``, ``onSuccess=fnref.to_call()``).
        ``call`` may also be a whole Task spec as a dict. Returns its node id."""
        if isinstance(call, dict):
            spec = dict(call, **settings)
        else:
            spec = dict(settings, call=_as_ref(call).to_call())
        return self._handler.request(self.id, {"type": "spawn", "spec": _plain(spec)})


def _as_ref(call):
    if isinstance(call, Function):
        return call.ref()
    if isinstance(call, FnRef):
        return call
    raise TypeError("expected an FnRef or a kontinuum function, got %s" % type(call).__name__)


# --- the protocol loop -----------------------------------------------------


class Handler:
    """Serves ``functions`` on two fds until the worker closes its end."""

    def __init__(self, functions, in_fd, out_fd, max_line=8 * 1024 * 1024):
        self.functions = functions
        self.in_fd, self.out_fd, self.max_line = in_fd, out_fd, max_line
        self.buf = bytearray()
        self.calls = collections.deque()
        self.answers = {}
        self.cancelled_ids = set()
        self.out = []
        self.next_req = 0
        self.closed = False

    # reading

    def _take(self, block):
        """Reads what is there (waits for something if ``block``); False at the end."""
        if self.closed:
            return False
        if not block and not select.select([self.in_fd], [], [], 0)[0]:
            return True
        data = os.read(self.in_fd, 1 << 16)
        if not data:
            self.closed = True
            return False
        self.buf += data
        end = self.buf.rfind(b"\n")
        if end < 0:
            return True
        chunk = bytes(self.buf[:end])
        del self.buf[: end + 1]
        for line in chunk.split(b"\n"):
            if line:
                self._route(_loads(line))
        return True

    def _route(self, msg):
        kind = msg.get("type")
        if kind == "call":
            self.calls.append(msg)
        elif kind == "answer":
            self.answers[msg.get("req")] = msg
        elif kind == "cancel":
            self.cancelled_ids.add(msg.get("id"))
        else:
            print("kontinuum: ignoring a message of unknown type %r" % (kind,), file=sys.stderr)

    def is_cancelled(self, call_id):
        self._take(block=False)
        return call_id in self.cancelled_ids

    # writing

    def send(self, msg):
        self.out.append(dumps(msg))
        self.flush()

    def flush(self):
        if not self.out:
            return
        data = b"".join(self.out)
        self.out.clear()
        view = memoryview(data)
        while view:
            view = view[os.write(self.out_fd, view):]

    def request(self, call_id, msg):
        self.next_req += 1
        req = self.next_req
        msg.update(id=call_id, req=req)
        self.send(msg)
        while req not in self.answers:
            if not self._take(block=True):
                raise FunctionError("the worker closed the channel while call %s waited for an answer" % call_id)
        answer = self.answers.pop(req)
        if "error" in answer:
            error = answer["error"] or {}
            raise FunctionError(error.get("message", "refused"), error.get("retryable", True))
        return answer.get("value")

    # serving

    def hello(self):
        self.send({"type": "hello", "protocol": PROTOCOL, "functions": sorted(self.functions)})

    def serve(self):
        self.hello()
        # Function name -> whether its last call took under FAST seconds.
        quick = {}
        while True:
            if not self.calls:
                self.flush()
                if not self._take(block=True):
                    return
                continue
            msg = self.calls.popleft()
            name = msg.get("function")
            # Replies ready so far go out before a call that may take long
            # (its function was slow last time, or has not run yet); before a
            # quick one they wait and go out together, one write for many.
            if not quick.get(name) or len(self.out) >= 256:
                self.flush()
            started = time.perf_counter()
            self.out.append(self.run(msg))
            quick[name] = time.perf_counter() - started < FAST

    def run(self, msg):
        call_id = msg.get("id")
        name = msg.get("function")
        try:
            if call_id in self.cancelled_ids:
                return _error(call_id, "cancelled before it started", True)
            f = self.functions.get(name)
            if f is None:
                return _error(call_id, "function '%s' is not served by this handler" % name, False)
            ctx = Ctx(self, call_id, name, msg.get("attempt", 1), msg.get("deadline")) if f.wants_ctx else None
            try:
                value = f.fn(**f.arguments(msg.get("args") or {}, ctx))
            except FunctionError as e:
                return _error(call_id, e.message, e.retryable)
            except Exception as e:
                sys.stderr.write("call %s of '%s' (attempt %s) raised:\n%s" % (call_id, name, msg.get("attempt"), traceback.format_exc()))
                return _error(call_id, "%s: %s" % (type(e).__name__, e), True)
            try:
                # The envelope by hand: one encode of the value, not of a dict around it.
                line = ('{"type":"result","id":%d,"value":%s}\n' % (call_id, _ENCODER.encode(value))).encode("utf-8")
            except (TypeError, ValueError) as e:
                return _error(call_id, "the result of '%s' is not JSON: %s" % (name, e), False)
            if len(line) > self.max_line:
                return _error(call_id, "the result of '%s' takes %d bytes; at most %d fit a protocol line" % (name, len(line), self.max_line), False)
            return line
        finally:
            self.cancelled_ids.discard(call_id)


def _error(call_id, message, retryable):
    message = str(message)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    return dumps({"type": "error", "id": call_id, "message": message, "retryable": bool(retryable)})


def serve(functions=None):
    """Serves the registered functions (or ``functions``, a list of them) to
    the worker that started this process, until it closes the channel."""
    if os.environ.get("KONTINUUM_HANDLER_PROTOCOL") != str(PROTOCOL):
        sys.stderr.write(
            "kontinuum: this program serves Kontinuum functions; run it under a worker:\n"
            "  kontinuum-worker --server URL --handler 'python3 %s'\n" % (sys.argv[0] or "app.py")
        )
        sys.exit(2)
    table = {f.name: f for f in functions} if functions is not None else registered()
    if not table:
        sys.stderr.write("kontinuum: no functions registered (decorate some with @kontinuum.function)\n")
        sys.exit(2)
    in_fd = int(os.environ.get("KONTINUUM_HANDLER_IN_FD", "3"))
    out_fd = int(os.environ.get("KONTINUUM_HANDLER_OUT_FD", "4"))
    # Programs this one starts must not hold the protocol's pipes open.
    os.set_inheritable(in_fd, False)
    os.set_inheritable(out_fd, False)
    # Prints reach the worker's log as they happen, not when a buffer fills.
    sys.stdout.reconfigure(line_buffering=True)
    max_line = int(os.environ.get("KONTINUUM_HANDLER_MAX_LINE", str(8 * 1024 * 1024)))
    Handler(table, in_fd, out_fd, max_line).serve()
