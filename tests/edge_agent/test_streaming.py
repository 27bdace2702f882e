"""The streamed answer flow when its consumer goes away: decoding stops, the cloud stream is
closed, and usage is counted once (fakes; the real agent is in test_openai_integration.py)."""

import asyncio
import threading
import time

from edge_agent.metrics import EdgeMetrics
from edge_agent.outbox import UsageOutbox
from edge_agent.service import EdgeService, Question
from edge_agent.streaming import Delta, Started, answer_stream
from edge_agent.worker import ModelWorker
from edge_fakes import CLOUD_TEXT, FakeCloud, FakeModel


class SlowModel(FakeModel):
    """Yields one piece every 20 ms and says how many it decoded before it was closed."""

    def __init__(self):
        super().__init__()
        self.decoded, self.closed = 0, threading.Event()

    def stream(self, messages, **kw):
        pieces = super().stream(messages, **kw)

        def slow():
            try:
                while True:
                    time.sleep(0.02)
                    self.decoded += 1
                    yield next(pieces)
            except StopIteration as done:
                return done.value
            finally:
                self.closed.set()

        return slow()


class SlowCloud(FakeCloud):
    def __init__(self):
        super().__init__()
        self.closed = threading.Event()

    def assist_stream(self, example, messages, **kw):
        try:
            for part in super().assist_stream(example, messages, **kw):
                time.sleep(0.02)
                yield part
        finally:
            self.closed.set()


def _service(tmp_path, model, cloud):
    return EdgeService(ModelWorker(model, 4), cloud, UsageOutbox(tmp_path / "u.sqlite"), EdgeMetrics(), "m.gguf")


async def _take(events, n, source):
    """Consume events until n Deltas from `source` arrived."""
    got = 0
    async for e in events:
        assert isinstance(e, (Started, Delta))
        got += isinstance(e, Delta) and e.source == source
        if got == n:
            return


def test_consumer_gone_during_local_decoding_stops_it_and_reports_nothing(tmp_path):
    model = SlowModel()
    service = _service(tmp_path, model, FakeCloud())

    async def go():
        events = answer_stream(service, Question(task="math", question="What is 2 + 2?", max_tokens=64))
        await _take(events, 2, "local")
        await events.aclose()

    asyncio.run(go())
    assert model.closed.wait(2) and model.decoded <= 4  # of the 20 pieces of LOCAL_TEXT
    assert service.outbox.totals() == {} and service.outbox.pending() == 0
    service.worker.stop()


def test_consumer_gone_during_the_cloud_part_closes_it_and_counts_the_help_request_once(tmp_path):
    cloud = SlowCloud()
    service = _service(tmp_path, FakeModel(), cloud)

    async def go():
        events = answer_stream(service, Question(task="math", question="HARD: integrate x^x", max_tokens=64))
        await _take(events, 1, "cloud")
        await events.aclose()

    asyncio.run(go())
    assert cloud.closed.wait(2) and len(cloud.assist_keys) == 1
    assert service.outbox.totals() == {"math": (1, 1)}
    assert service.outbox._db.execute("SELECT SUM(offline_help) FROM usage").fetchone()[0] == 0
    service.worker.stop()


def test_whole_stream_is_local_part_then_cloud_deltas(tmp_path):
    service = _service(tmp_path, FakeModel(), FakeCloud())

    async def go():
        return [e async for e in answer_stream(service, Question(task="math", question="HARD: x"))]

    events = asyncio.run(go())
    cloud = [e.text for e in events if isinstance(e, Delta) and e.source == "cloud"]
    assert "".join(cloud) == CLOUD_TEXT and len(cloud) > 1
    assert isinstance(events[0], Started) and events[-1].answer.cloud_part == CLOUD_TEXT
    service.worker.stop()
