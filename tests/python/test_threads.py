"""One Model called from many Python threads at once: every result right, runs overlap
(the GIL is released while kiln runs)."""
import sys
import threading
import time

import numpy as np

import kiln
from conftest import ATOL, RTOL, model_path, torch_reference


def test_many_threads_one_model(cnn, cnn_torch):
    rng = np.random.default_rng(11)
    cases = [rng.standard_normal((b, 3, 16, 16), dtype=np.float32) for b in (1, 2, 3, 5, 8, 13)]
    expected = [torch_reference(cnn_torch, x) for x in cases]
    errors = []
    start = threading.Barrier(8)

    def worker(seed):
        start.wait()
        for i in range(25):
            k = (seed + i) % len(cases)
            try:
                np.testing.assert_allclose(cnn(cases[k]), expected[k], rtol=RTOL, atol=ATOL)
            except Exception as e:  # reported from the main thread
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_gil_is_released_during_a_run():
    # A Python thread counts while another thread runs the model back to back. With the GIL
    # released inside kiln, the counter runs throughout; were it held, the counter could run
    # only between runs (about one switch interval, 1 ms, per ~30 ms run: a few percent).
    model = kiln.compile(model_path("cnn"), dynamic={"batch": (1, 2048)}, runners=1, threads=1)
    x = np.zeros((2048, 3, 16, 16), np.float32)
    model(x)  # warm

    def count_for(seconds):
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    alone_before = count_for(0.3)
    done = threading.Event()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        def runner():
            while not done.is_set():
                model(x)

        t = threading.Thread(target=runner)
        t.start()
        time.sleep(0.05)  # let the runner get going
        together = count_for(0.3)
        done.set()
        t.join()
    finally:
        sys.setswitchinterval(old_interval)
    alone = (alone_before + count_for(0.3)) / 2  # before and after: the machine's load drifts
    # Released: the counter keeps at least its share of a core (>= ~50% when the two threads
    # share one); held: a few percent.
    assert together > 0.25 * alone, (together, alone)
