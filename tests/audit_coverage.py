"""Which audit actions the suite produced: every AuditEvent saved in this test process adds its
action here (a post_save receiver, connected for the session by tests/conftest.py).
tests/test_audit_coverage.py compares this with the registry once every other test has run."""

PRODUCED: set[str] = set()
COVERAGE_TEST = "test_every_registered_action_is_produced_by_some_test"


def remember(sender, instance, created, **kwargs):
    if created:
        PRODUCED.add(instance.action)
