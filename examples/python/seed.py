"""The seed design's examples as Python functions, served to a worker:

    kontinuum serve --data /tmp/k &
    kontinuum-worker --server http://127.0.0.1:7070 --handler 'python3 examples/python/seed.py'
    kontinuum submit examples/python/seed.yaml --server http://127.0.0.1:7070 --wait

A closure is an FnRef: a function's name with its captures bound, so it can
be handed to a continuation, returned as a value and compared by stable id,
in any language (examples/seed-worker has the same in Rust).
"""

import os
import sys
import time

try:
    import kontinuum
except ImportError:
    # Run from a checkout: the SDK is one file in sdk/python.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))
    import kontinuum

from kontinuum import Permanent, function


# DoSum(4, 5, OnSuccess): the sum is the task's result, and the task's
# onSuccess continuation gets it bound as `result`.
@function("py.do_sum")
def do_sum(a, b):
    return a + b


@function("py.success_handler")
def success_handler(result):
    print("DoSum gave %s" % result)
    return result


# GenerateSuccessHandler(c): a handler closing over c is add_c with c bound.
@function("py.add_c")
def add_c(result, c):
    return result + c


def generate_success_handler(c):
    return add_c.ref(c=c)


# A function returned as a value: make_adder's result is a function, and its
# continuation calls it.
@function("py.make_adder")
def make_adder(c):
    return generate_success_handler(c)


@function("py.call_returned")
def call_returned(result, x):
    # `result` arrives as an FnRef: call it here with x as its `result`.
    return kontinuum.call(result, result=x)


# UpdatePerson(personId), debounced in the manifest: calls with the same
# arguments (the same stable id) within the window run once.
@function("py.update_person")
def update_person(personId):
    print("updating person %s" % personId)
    return "updated %s" % personId


# Fan-out as Ray users write it with nested remote calls: each child is a
# task of the calling node's tree, and the future's value collects theirs.
@function("py.fan_out")
def fan_out(ctx, n):
    for i in range(n):
        ctx.child(square.ref(item=i))
    ctx.progress(n)
    return "spawned %d" % n


@function("py.square")
def square(item):
    return item * item


# A function that fails: retried as the task's retry says, then Failed with
# this message.
@function("py.fail")
def fail(message):
    raise ValueError(message)


@function("py.refuse")
def refuse(reason):
    raise Permanent(reason)


# For the kill -9 test: the first attempt writes its pid and waits to be
# killed; the next one answers at once.
@function("py.slow_square")
def slow_square(ctx, item, pidfile):
    if ctx.attempt == 1:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)
    return item * item


if __name__ == "__main__":
    kontinuum.serve()
