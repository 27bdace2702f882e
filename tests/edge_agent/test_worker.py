"""The model worker: FIFO, bounded queue, control jobs between requests, errors to the caller."""

import threading

import pytest

from edge_agent.worker import ModelWorker, QueueFull


def test_jobs_run_in_arrival_order_on_one_thread():
    seen = []
    w = ModelWorker("model", max_queue=100)
    futs = [w.submit(lambda m, i=i: seen.append((i, m, threading.current_thread().name)))
            for i in range(20)]
    for f in futs:
        f.result(5)
    w.stop()
    assert [i for i, _, _ in seen] == list(range(20))
    assert {(m, t) for _, m, t in seen} == {("model", "edge-model")}


def test_full_queue_refuses_requests_but_not_control_jobs():
    gate = threading.Event()
    w = ModelWorker(None, max_queue=2)
    running = w.submit(lambda m: gate.wait(5))  # occupies the worker
    while w.depth:  # wait until it left the queue
        pass
    waiting = [w.submit(lambda m: 1), w.submit(lambda m: 2)]
    with pytest.raises(QueueFull) as err:
        w.submit(lambda m: 3)
    assert err.value.retry_after_s >= 1
    control = w.submit(lambda m: "swapped", control=True)
    gate.set()
    assert [f.result(5) for f in waiting] == [1, 2]
    assert control.result(5) == "swapped" and running.result(5) is True
    w.stop()


def test_an_exception_reaches_the_caller_and_the_worker_survives():
    w = ModelWorker(None, max_queue=4)
    with pytest.raises(ZeroDivisionError):
        w.submit(lambda m: 1 / 0).result(5)
    assert w.submit(lambda m: "alive").result(5) == "alive"
    w.stop()
