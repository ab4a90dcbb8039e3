"""client/errors.py: one line, the request id, never a secret."""

from __future__ import annotations

from packloader import pack_import

errors = pack_import("client.errors")


def test_registered_secret_is_scrubbed_from_error_messages():
    errors.register_secret("sekrit-value-123456")
    assert "sekrit" not in str(errors.RunComfyError("bad token sekrit-value-123456 given"))
