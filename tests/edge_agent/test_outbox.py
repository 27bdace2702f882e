"""The durable usage outbox: nothing lost across outages and restarts, retries keep their key."""

from edge_agent.outbox import UsageOutbox
from edge_fakes import FakeCloud


def test_flush_sums_per_task_and_empties(tmp_path):
    box, cloud = UsageOutbox(tmp_path / "u.sqlite"), FakeCloud()
    for task, h in [("math", 1), ("math", 0), ("science", 0), ("math", 1)]:
        box.add(task, 1, h)
    result = box.flush(cloud)
    assert sorted((t, r, h) for t, r, h, _ in cloud.reports) == [("math", 3, 2), ("science", 1, 0)]
    assert (result.sent_rows, result.pending_rows, box.pending()) == (4, 0, 0)
    assert set(result.telemetry) == {"math", "science"}


def test_outage_keeps_rows_across_a_restart_and_resends_with_the_same_key(tmp_path):
    path = tmp_path / "u.sqlite"
    box, cloud = UsageOutbox(path), FakeCloud("down")
    box.add("math", 1, 1)
    box.add("math", 1, 0)
    assert box.flush(cloud).pending_rows == 2
    box.close()

    box = UsageOutbox(path)  # the agent restarted
    box.add("math", 1, 1)  # arrives after the failed batch was sealed: a batch of its own
    cloud.mode = "ok"
    result = box.flush(cloud)
    assert result.sent_rows == 3 and box.pending() == 0
    assert [(r, h) for _, r, h, _ in cloud.reports] == [(2, 1), (1, 1)]
    keys = [k for *_, k in cloud.reports]
    assert len(set(keys)) == 2 and all(keys)


def test_a_sealed_batch_keeps_its_key_between_failed_attempts(tmp_path):
    box = UsageOutbox(tmp_path / "u.sqlite")
    box.add("math", 1, 0)

    class FlakyCloud(FakeCloud):
        def report_usage(self, task, responses, help_requests, *, idempotency_key=None, offline_help=0):
            self.reports.append((task, responses, help_requests, idempotency_key))
            if len(self.reports) == 1:
                raise __import__("collab.cloud").cloud.CloudUnavailable("ack lost")
            return None

    cloud = FlakyCloud()
    box.flush(cloud)
    box.flush(cloud)
    assert cloud.reports[0] == cloud.reports[1]  # same sums, same idempotency key
    assert box.pending() == 0


def test_offline_help_is_summed_per_batch(tmp_path):
    box, cloud = UsageOutbox(tmp_path / "u.sqlite"), FakeCloud()
    for h, off in [(1, 1), (1, 0), (0, 0), (1, 1)]:
        box.add("math", 1, h, off)
    box.flush(cloud)
    assert [r[1:3] for r in cloud.reports] == [(4, 3)] and cloud.offline == [2]


def test_a_batch_waits_for_its_answers_in_flight(tmp_path):
    """An answer's Assist names its batch: the batch's report leaves only after its row is in."""
    box, cloud = UsageOutbox(tmp_path / "u.sqlite"), FakeCloud()
    slow = box.begin("math")  # an answer still waiting for the cloud
    box.add("math", 1, 0, batch=box.begin("math"))  # a fast answer in the same batch
    assert box.flush(cloud).sent_rows == 0 and cloud.reports == []
    later = box.begin("math")  # the flush closed the batch: a new answer gets a new one
    assert later != slow
    box.add("math", 1, 1, batch=slow)
    box.add("math", 1, 0, batch=later)
    box.flush(cloud)
    assert [(r[1], r[2], r[3]) for r in cloud.reports] == [(2, 1, slow), (1, 0, later)]
    box.cancel(box.begin("math"))  # an answer that failed before it had a row blocks nothing
    assert box.flush(cloud).pending_rows == 0
