"""Lockstep: many per-item consensus loops (threads) share one batched generator call.

`rerank_rounds` is a loop per item (a GSM8K problem), while a language model on a CPU is only fast when many
prompts share one batched call. `lockstep` runs the loops in threads and answers their proposal requests
together: once every unfinished loop is waiting, one batched call serves them all (in a fixed order, so the
results do not depend on thread timing). All torch work (the batched call and the loops' scoring) runs on the
calling thread: torch's OpenMP pool belongs to the thread that uses it, and a pool per loop thread made every call
pay for waking its own idle workers (2x slower on 2 cores).
"""
from __future__ import annotations

import functools
import threading
from typing import Callable, Hashable, Sequence


class _Lockstep:
    """The loops' side: a loop posts a batched request or a call and waits for its answer. The owner's side
    (`run`, on the calling thread): runs posted calls as they come, and serves the batched requests, in key
    order, once every unfinished loop waits on one."""

    def __init__(self, serve: Callable[[list], list], clients: int):
        self.serve, self.active = serve, clients
        self.cond = threading.Condition()
        self.pending: dict = {}  # key -> payload of a batched request
        self.calls: list = []  # (key, zero-argument function) to run on the owner's thread
        self.answers: dict = {}

    def _wait_for_answer(self, key):
        self.cond.notify_all()
        self.cond.wait_for(lambda: key in self.answers)
        answer = self.answers.pop(key)
        if isinstance(answer, BaseException):
            raise RuntimeError("a call on the serving thread failed") from answer
        return answer

    def request(self, key, payload):
        with self.cond:
            self.pending[key] = payload
            return self._wait_for_answer(key)

    def call(self, key, fn, *args, **kwargs):
        with self.cond:
            self.calls.append((key, functools.partial(fn, *args, **kwargs)))
            return self._wait_for_answer(key)

    def leave(self):
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def run(self):
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.calls or not self.active
                                   or (self.pending and len(self.pending) >= self.active))
                calls, self.calls = self.calls, []
                batch = {} if calls else {k: self.pending.pop(k) for k in sorted(self.pending)}
            if not calls and not batch:
                return
            if calls:
                answers = {key: _outcome(fn) for key, fn in calls}
            else:  # one answer per waiting loop; a failed call fails them all instead of leaving them waiting
                result = _outcome(self.serve, list(batch.values()))
                answers = dict(zip(batch, [result] * len(batch) if isinstance(result, BaseException) else result))
            with self.cond:
                self.answers.update(answers)
                self.cond.notify_all()


def _outcome(fn, *args):
    """fn(*args)'s result, or the exception it raised."""
    try:
        return fn(*args)
    except BaseException as err:
        return err


def lockstep(keys: Sequence[Hashable], loop: Callable, serve: Callable[[list], list]) -> dict:
    """Run `loop(key, request, call)` for every key, each in its own thread. `request(payload)` blocks until one
    call `serve([payloads of all waiting loops, in key order])` answers; `call(fn, *args, **kwargs)` runs fn on
    this (the calling) thread and returns its result. Returns {key: loop result}; re-raises the first error of a
    loop."""
    gate = _Lockstep(serve, len(keys))
    results, errors = {}, {}

    def run(key):
        try:
            results[key] = loop(key, lambda payload: gate.request(key, payload),
                                lambda fn, *args, **kwargs: gate.call(key, fn, *args, **kwargs))
        except BaseException as err:
            errors[key] = err
        finally:
            gate.leave()

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in keys]
    for t in threads:
        t.start()
    gate.run()
    for t in threads:
        t.join()
    if errors:
        key = sorted(errors)[0]
        raise RuntimeError(f"the consensus loop of {key!r} failed: {errors[key]}") from errors[key]
    return results
