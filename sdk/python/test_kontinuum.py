"""Unit tests of kontinuum.py: python3 -m unittest discover -s sdk/python.

The handler loop runs in a thread on two pipes; the test plays the worker.
One test starts a real handler process with its fds 3 and 4 placed as the
worker places them, to show that prints never reach the protocol.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontinuum  # noqa: E402
from kontinuum import FnRef, Function, Handler, Permanent, canonical_json  # noqa: E402


class Worker:
    """The worker's side of a handler running in a thread."""

    def __init__(self, functions, max_line=8 * 1024 * 1024):
        to_handler_r, self.to_handler = os.pipe()
        self.from_handler, from_handler_w = os.pipe()
        self.handler = Handler({f.name: f for f in functions}, to_handler_r, from_handler_w, max_line)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.reader = os.fdopen(self.from_handler, "rb")
        self.fds = (to_handler_r, from_handler_w)

    def _run(self):
        try:
            self.handler.serve()
        finally:
            os.close(self.fds[1])

    def send(self, msg):
        os.write(self.to_handler, (json.dumps(msg) + "\n").encode())

    def read(self):
        line = self.reader.readline()
        if not line:
            raise AssertionError("the handler closed its output")
        return json.loads(line)

    def call(self, function, args, call_id=1, **extra):
        self.send(dict({"type": "call", "id": call_id, "function": function, "args": args, "attempt": 1, "deadline": None}, **extra))
        return self.read()

    def close(self):
        os.close(self.to_handler)
        self.thread.join(5)
        self.reader.close()
        os.close(self.fds[0])


def fn(name, f):
    return Function(name, f)


class FnRefs(unittest.TestCase):
    def test_stable_ids_match_the_reference_vectors(self):
        # docs/reference.md: the same ids the engine computes.
        self.assertEqual(
            FnRef("std.sum", {"a": 4, "b": 5}).stable_id(),
            "sha256:ef451d4338095897825baa8b97a3502fc8ba990830b0eef4a6b1b1ea8da47a5e",
        )
        self.assertEqual(
            FnRef("people.update", {"personId": "1234"}).stable_id(),
            "sha256:fc3c27dd17c1fa1b923264c9ab47db1619c06330e55d668611648d48f8dd94c3",
        )
        self.assertEqual(
            FnRef("std.echo").stable_id(),
            "sha256:b6a4375872ba5a3aaf614c4aa266627c4f4c91d2dab26f67a4c5c4472434a6cf",
        )
        self.assertEqual(FnRef("f", {"x": 2.0}), FnRef("f", {"x": 2}))
        self.assertNotEqual(FnRef("f", {"x": 1}), FnRef("f", {"x": 2}))

    def test_canonical_numbers_are_ecmascripts(self):
        cases = {1e21: "1e+21", 1e20: "100000000000000000000", 1e-7: "1e-7", 0.000001: "0.000001",
                 1.5: "1.5", -0.0: "0", 123.456: "123.456", 1.2e-10: "1.2e-10", 5e-324: "5e-324",
                 1.7976931348623157e308: "1.7976931348623157e+308", 12345678.9: "12345678.9", -2: "-2"}
        for number, text in cases.items():
            self.assertEqual(canonical_json(number), text, number)
        self.assertEqual(canonical_json({"b": [1, "é\n"], "a": None, "\u20ac": True, "\U0001F600": False}),
                         '{"a":null,"b":[1,"é\\n"],"€":true,"😀":false}')
        with self.assertRaises(ValueError):
            canonical_json(float("nan"))

    def test_binding_twice_is_an_error_and_values_round_trip(self):
        f = FnRef("py.add_c", {"c": 7})
        self.assertEqual(f.bind(result=9).args, {"c": 7, "result": 9})
        with self.assertRaisesRegex(ValueError, "argument 'c' is already bound"):
            f.bind(c=1)
        with self.assertRaises(ValueError):
            FnRef("9bad")
        line = kontinuum.dumps({"v": f, "g": fn("py.g", lambda: 1)})
        self.assertEqual(json.loads(line), {"v": {"$fn": {"function": "py.add_c", "args": {"c": 7}}},
                                            "g": {"$fn": {"function": "py.g", "args": {}}}})
        self.assertEqual(kontinuum._loads(line)["v"], f)


class Functions(unittest.TestCase):
    def test_arguments_by_name_extra_ones_left_out(self):
        f = fn("py.add", lambda a, b=10: a + b)
        self.assertEqual(f.arguments({"a": 1, "item": 5}, None), {"a": 1})
        with self.assertRaisesRegex(Permanent, "missing argument 'a'"):
            f.arguments({"b": 1}, None)
        g = fn("py.all", lambda ctx, **kw: kw)
        self.assertEqual(g.arguments({"x": 1}, "C"), {"x": 1, "ctx": "C"})
        with self.assertRaisesRegex(Permanent, "argument 'ctx'"):
            g.arguments({"ctx": 1}, "C")

    def test_bad_definitions_are_refused_when_decorated(self):
        with self.assertRaisesRegex(ValueError, "not a function name"):
            Function("no good", lambda: 1)
        with self.assertRaisesRegex(TypeError, "cannot be given by name"):
            Function("py.pos", eval("lambda a, /: a"))
        with self.assertRaisesRegex(TypeError, "cannot be given by name"):
            Function("py.star", lambda *a: a)

    def test_the_decorator_registers_once(self):
        @kontinuum.function("test.decorated")
        def decorated(x):
            return x * 2

        self.assertEqual(decorated(4), 8)
        self.assertIs(kontinuum.registered()["test.decorated"], decorated)
        self.assertEqual(decorated.ref(x=1), FnRef("test.decorated", {"x": 1}))
        with self.assertRaisesRegex(ValueError, "registered twice"):
            kontinuum.function("test.decorated")(lambda: 1)


class Protocol(unittest.TestCase):
    def setUp(self):
        self.worker = None

    def tearDown(self):
        if self.worker:
            self.worker.close()

    def start(self, *functions, **kw):
        self.worker = Worker(functions, **kw)
        return self.worker

    def test_hello_then_results_and_errors(self):
        def boom(x):
            raise ValueError("bad input %s" % x)

        def never_again():
            raise Permanent("no point")

        w = self.start(fn("py.add", lambda a, b: a + b), fn("py.boom", boom), fn("py.never", never_again))
        self.assertEqual(w.read(), {"type": "hello", "protocol": 1, "functions": ["py.add", "py.boom", "py.never"]})
        self.assertEqual(w.call("py.add", {"a": 4, "b": 5}), {"type": "result", "id": 1, "value": 9})
        self.assertEqual(w.call("py.add", {"a": 2**70, "b": 1}, 2)["value"], 2**70 + 1)
        self.assertEqual(w.call("py.boom", {"x": 3}, 3),
                         {"type": "error", "id": 3, "message": "ValueError: bad input 3", "retryable": True})
        self.assertEqual(w.call("py.never", {}, 4),
                         {"type": "error", "id": 4, "message": "no point", "retryable": False})
        self.assertEqual(w.call("py.add", {"a": 1}, 5),
                         {"type": "error", "id": 5, "message": "missing argument 'b'", "retryable": False})
        reply = w.call("py.nope", {}, 6)
        self.assertEqual((reply["type"], reply["retryable"]), ("error", False))
        self.assertIn("'py.nope' is not served", reply["message"])

    def test_results_that_are_not_json_or_too_large_are_permanent_errors(self):
        w = self.start(fn("py.set", lambda: {1, 2}), fn("py.nan", lambda: float("nan")),
                       fn("py.big", lambda: "x" * 5000), max_line=1000)
        w.read()
        for name in ("py.set", "py.nan"):
            reply = w.call(name, {})
            self.assertEqual((reply["type"], reply["retryable"]), ("error", False), reply)
            self.assertIn("is not JSON", reply["message"])
        reply = w.call("py.big", {})
        self.assertIn("takes 5036 bytes; at most 1000", reply["message"])

    def test_function_values_cross_in_and_out(self):
        def apply(f, a):
            return f.bind(result=a)

        w = self.start(fn("py.apply", apply))
        w.read()
        reply = w.call("py.apply", {"f": {"$fn": {"function": "py.add_c", "args": {"c": 7}}}, "a": 9})
        self.assertEqual(reply["value"], {"$fn": {"function": "py.add_c", "args": {"c": 7, "result": 9}}})

    def test_requests_of_a_running_call_wait_for_their_answers(self):
        def fan_out(ctx, n):
            nodes = [ctx.child(FnRef("py.leaf", {"i": i}), weight=2) for i in range(n)]
            ctx.progress(n)
            spawned = ctx.spawn(FnRef("py.later"), delay="1s")
            return {"children": nodes, "spawned": spawned, "attempt": ctx.attempt}

        w = self.start(fn("py.fan_out", fan_out), fn("py.quick", lambda: "quick"))
        w.read()
        w.send({"type": "call", "id": 7, "function": "py.fan_out", "args": {"n": 2}, "attempt": 3, "deadline": None})
        # A call arriving while the first waits is run after it, not lost.
        w.send({"type": "call", "id": 8, "function": "py.quick", "args": {}, "attempt": 1, "deadline": None})
        for i in range(2):
            req = w.read()
            self.assertEqual(req["type"], "child")
            self.assertEqual((req["id"], req["call"], req["weight"]), (7, {"function": "py.leaf", "args": {"i": i}}, 2))
            w.send({"type": "answer", "id": 7, "req": req["req"], "value": 100 + i})
        self.assertEqual(w.read(), {"type": "progress", "id": 7, "units": 2})
        req = w.read()
        self.assertEqual(req["spec"], {"delay": "1s", "call": {"function": "py.later", "args": {}}})
        w.send({"type": "answer", "id": 7, "req": req["req"], "value": 200})
        self.assertEqual(w.read()["value"], {"children": [100, 101], "spawned": 200, "attempt": 3})
        self.assertEqual(w.read(), {"type": "result", "id": 8, "value": "quick"})

    def test_a_refused_request_raises_in_the_function(self):
        def spawner(ctx):
            ctx.spawn({"call": {"function": "x"}})

        w = self.start(fn("py.spawner", spawner))
        w.read()
        w.send({"type": "call", "id": 1, "function": "py.spawner", "args": {}, "attempt": 1, "deadline": None})
        req = w.read()
        w.send({"type": "answer", "id": 1, "req": req["req"], "error": {"message": "spec: bad", "retryable": False}})
        self.assertEqual(w.read(), {"type": "error", "id": 1, "message": "spec: bad", "retryable": False})

    def test_a_quick_reply_does_not_wait_for_a_slow_call_behind_it(self):
        import time

        w = self.start(fn("py.quick", lambda: "q"), fn("py.slow", lambda: time.sleep(1.0) or "s"))
        w.read()
        for i in (1, 2):
            self.assertEqual(w.call("py.quick", {}, i)["value"], "q")
        started = time.monotonic()
        # In one write, so that the handler finds both queued at once.
        both = [{"type": "call", "id": i, "function": f, "args": {}, "attempt": 1, "deadline": None}
                for i, f in ((3, "py.quick"), (4, "py.slow"))]
        os.write(w.to_handler, "".join(json.dumps(m) + "\n" for m in both).encode())
        self.assertEqual(w.read()["id"], 3)
        self.assertLess(time.monotonic() - started, 0.8, "the quick reply waited for the slow call")
        self.assertEqual(w.read(), {"type": "result", "id": 4, "value": "s"})

    def test_cancel_is_seen_by_a_running_call_and_skips_a_queued_one(self):
        started = threading.Event()

        def waits(ctx):
            started.set()
            while not ctx.cancelled:
                pass
            return "saw cancel"

        w = self.start(fn("py.waits", waits), fn("py.next", lambda: "ran"))
        w.read()
        w.send({"type": "call", "id": 1, "function": "py.waits", "args": {}, "attempt": 1, "deadline": 1e15})
        self.assertTrue(started.wait(5))
        w.send({"type": "call", "id": 2, "function": "py.next", "args": {}, "attempt": 1, "deadline": None})
        w.send({"type": "cancel", "id": 2})
        w.send({"type": "cancel", "id": 1})
        self.assertEqual(w.read()["value"], "saw cancel")
        self.assertEqual(w.read(), {"type": "error", "id": 2, "message": "cancelled before it started", "retryable": True})


class RealProcess(unittest.TestCase):
    def test_prints_go_to_stdout_not_into_the_protocol(self):
        here = os.path.dirname(os.path.abspath(__file__))
        script = textwrap.dedent("""
            import os, sys
            sys.path.insert(0, %r)
            import kontinuum

            @kontinuum.function("py.noisy")
            def noisy(x):
                print('{"type":"result","id":1,"value":"forged"}')
                os.system("echo from a subprocess")
                return x + 1

            kontinuum.serve()
        """ % here)
        calls_r, calls_w = os.pipe()
        replies_r, replies_w = os.pipe()

        def place():
            # Copied above 10 first: either pipe may already be fd 3 or 4.
            a, b = os.dup(calls_r), os.dup(replies_w)
            a, b = os.dup2(a, 10 + a), os.dup2(b, 10 + b)
            os.dup2(a, 3)
            os.dup2(b, 4)

        env = dict(os.environ, KONTINUUM_HANDLER_PROTOCOL="1", KONTINUUM_HANDLER_IN_FD="3", KONTINUUM_HANDLER_OUT_FD="4")
        # close_fds would close 3 and 4 after place(); Python's own fds are
        # close-on-exec anyway.
        proc = subprocess.Popen([sys.executable, "-c", script], preexec_fn=place, close_fds=False,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        os.close(calls_r)
        os.close(replies_w)
        replies = os.fdopen(replies_r, "rb")
        hello = replies.readline()
        if not hello:
            proc.kill()
            self.fail("no hello: %r" % (proc.communicate()[1],))
        self.assertEqual(json.loads(hello)["type"], "hello")
        os.write(calls_w, b'{"type":"call","id":1,"function":"py.noisy","args":{"x":41},"attempt":1,"deadline":null}\n')
        self.assertEqual(json.loads(replies.readline()), {"type": "result", "id": 1, "value": 42})
        os.close(calls_w)
        out, err = proc.communicate(timeout=10)
        replies.close()
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn(b'"forged"', out)
        self.assertIn(b"from a subprocess", out)

    def test_outside_a_worker_it_says_how_to_run_it(self):
        here = os.path.dirname(os.path.abspath(__file__))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONTINUUM_")}
        proc = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); import kontinuum; kontinuum.serve()" % here],
                              capture_output=True, env=env, timeout=10)
        self.assertEqual(proc.returncode, 2)
        self.assertIn(b"kontinuum-worker --server URL --handler", proc.stderr)


if __name__ == "__main__":
    unittest.main()
