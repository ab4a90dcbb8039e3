"""Behaviour switches for the points the RunComfy docs leave open.

The real service is only partly documented (see ``runcomfy-api.md``). Where a
detail is *unconfirmed* the default below is the documented or most likely
behaviour, and the alternative stays selectable, so the client can be tested
against both without editing the simulator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .error_codes import check_error_statuses, status_for

MIB = 1024 * 1024
STATUS_WORDS = ("in_queue", "in_progress", "completed", "failed", "cancelled")
INPUT_RULES = ("unknown_fields", "blank_prompt", "seed_int32")  # see validation.py

CHOICES: dict[str, tuple[Any, ...]] = {
    "error_style": ("string", "object"),
    "output_style": ("images", "image", "both"),
    "cancel_body": ("both", "status", "outcome"),
    "cancel_outcome": ("cancelled", "canceled", "cancellation_requested"),
    "pricing": ("plain", "by_resolution", "flat", "prose", "base_only", "missing"),
    "sign_in_auto": ("manual", "approve", "deny", "expire"),
}


@dataclass(frozen=True)
class Options:
    """Timings and protocol variants of one simulator; replaced, never mutated.

    - ``queue_seconds`` / ``run_seconds``: default lifecycle of a job (a job
      script can override both per job).
    - ``error_statuses``: ``{"<error code>": <HTTP status>}``, the status an
      error code is answered with instead of its route's natural one (400004
      on 401, 400002 on 402, 400001 on 400 for a submit and 404 for a catalog
      read, 403001 on 403, 404001 on 404, 422001 on 422). RunComfy's docs give
      no pairing, so e.g. ``{"400004": 400, "404001": 400}`` tests a client
      that must read ``error_code`` first (``error_codes.py``).
    - ``error_style``: a failed job's ``error`` as a plain string, or as an
      object ``{"message", "code"}``.
    - ``output_style``: ``{"images": [...]}``, ``{"image": url}`` (only when one
      image was asked for; several always come as ``images``), or both keys.
    - ``result_model_id``: whether finished results carry ``model_id`` ("sometimes
      present" per the docs).
    - ``cancel_body``: cancel answers carry ``status`` and ``outcome``, or only one.
    - ``cancel_outcome``: the ``outcome`` of a successful cancel. ``cancelled``
      is what RunComfy's CLI and ComfyUI nodes take as success (with ``status``
      ``cancelled``); ``canceled`` (US spelling) and ``cancellation_requested``
      (seen once, unconfirmed) are the other readings a client must accept.
    - ``refund_failed``: whether failed jobs are refunded. The docs only say every
      accepted submit is billed, so the default keeps the charge.
    - ``status_words``: renames of status values for every job (e.g.
      ``{"completed": "succeeded"}``); job scripts can set their own.
    - ``file_ttl_seconds``: output files expire this long after the job finished
      (None: never). How long RunComfy keeps them is unconfirmed.
    - ``max_active_jobs``: per-account limit of queued + running jobs, answered
      with HTTP 429 (None: unlimited). Unconfirmed on the real service.
    - ``max_body_bytes``: submit bodies above this get HTTP 413 (64 MiB, the
      limit RunComfy's own nodes respect).
    - ``file_wait_seconds``: how long the file route waits for a render.
    - ``max_file_bytes``: output files kept in memory; beyond it the oldest
      jobs' files expire (403), so a long benchmark cannot exhaust memory.
    - ``pricing``: what ``GET /v1/models/{id}`` says and what a submit bills
      (see ``billing.py``): ``plain`` (default: a base price and a note in
      words that the price varies by resolution, as RunComfy's catalog states
      prices; billed by resolution), ``by_resolution`` (the note lists
      ``<resolution> $<price>`` pairs), ``flat`` (one price
      per image whatever the resolution), ``prose`` (billed by resolution, the
      note in words no parser reads), ``base_only`` (no note), ``missing``
      (no price fields at all). Only ``flat`` changes what is billed.
    - ``public_catalog``: whether ``GET /v1/models`` and ``GET /v1/models/{id}``
      answer without a token. Unconfirmed either way on the real service
      (runcomfy-api.md): a public catalog is no token check.
    - ``report_cost``: whether ``?include_cost=true`` adds ``cost`` to a result.
      ``include_cost`` is not in RunComfy's docs: the real service may never report it.
    - ``input_rules``: refusals the docs do not state, opted into by name
      (``unknown_fields``, ``blank_prompt``, ``seed_int32``; see ``validation.py``).
    - ``sign_in_poll_interval`` / ``sign_in_expires_in``: what a device sign-in's
      start answers (``runcomfy login`` was seen with 5 and 600 seconds).
    - ``sign_in_auto``: ``manual`` (default: a test or the control API settles
      each sign-in), or ``approve`` / ``deny`` / ``expire`` every pending
      sign-in on its first poll (``python . login --simulator``).
    """

    queue_seconds: float = 1.0
    run_seconds: float = 4.0
    error_statuses: Mapping[str, int] = field(default_factory=dict)
    error_style: str = "string"
    output_style: str = "images"
    result_model_id: bool = True
    cancel_body: str = "both"
    cancel_outcome: str = "cancelled"
    refund_failed: bool = False
    status_words: Mapping[str, str] = field(default_factory=dict)
    file_ttl_seconds: float | None = None
    max_active_jobs: int | None = None
    max_body_bytes: int = 64 * MIB
    file_wait_seconds: float = 30.0
    max_file_bytes: int = 1024 * MIB
    pricing: str = "plain"
    public_catalog: bool = False
    report_cost: bool = True
    input_rules: tuple[str, ...] = ()
    sign_in_poll_interval: float = 5
    sign_in_expires_in: float = 600
    sign_in_auto: str = "manual"

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("queue_seconds", "run_seconds", "file_wait_seconds", "sign_in_poll_interval", "sign_in_expires_in"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        check_status_words(self.status_words)
        if self.max_active_jobs is not None and self.max_active_jobs < 1:
            raise ValueError("max_active_jobs must be None or >= 1")
        if self.max_body_bytes < 1 or self.max_file_bytes < 1:
            raise ValueError("max_body_bytes and max_file_bytes must be positive")
        if not set(self.input_rules) <= set(INPUT_RULES):
            raise ValueError(f"input_rules must be among {INPUT_RULES}, got {self.input_rules!r}")
        object.__setattr__(self, "status_words", dict(self.status_words))
        object.__setattr__(self, "error_statuses", check_error_statuses(self.error_statuses))
        object.__setattr__(self, "input_rules", tuple(self.input_rules))

    def status_for(self, error_code: int, natural: int) -> int:
        """The HTTP status to send ``error_code`` with (``natural``: the route's own choice)."""
        return status_for(error_code, natural, self.error_statuses)

    def replace(self, **changes: Any) -> "Options":
        """A copy with ``changes`` applied; unknown names are an error, not ignored."""
        return dataclasses.replace(self, **known_fields(Options, changes, "option"))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict, for the control endpoint."""
        return dataclasses.asdict(self)


def known_fields(cls: type, data: Any, what: str) -> dict[str, Any]:
    """``data`` as keyword arguments of the dataclass ``cls`` (its ``id``, if
    any, excluded): a typo in a control payload must fail, not be ignored."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a {what} must be a JSON object")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls) if f.name != "id"}
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    return dict(data)


def check_status_words(words: Mapping[str, str] | None) -> None:
    """Reject renames of states that do not exist (a typo would silently do nothing)."""
    if not words:
        return
    if not isinstance(words, Mapping):
        raise ValueError("status_words must be a mapping of state -> word")
    for state, word in words.items():
        if state not in STATUS_WORDS:
            raise ValueError(f"status_words: unknown state {state!r} (states: {', '.join(STATUS_WORDS)})")
        if not isinstance(word, str) or not word:
            raise ValueError(f"status_words[{state!r}] must be a non-empty string")
