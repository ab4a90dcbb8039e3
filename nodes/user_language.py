"""The node's status line and the errors users meet most, in the language the editor shows.

How the server learns that language: the pack's editor code (web/common/i18n.js) stores
the language it shows as the user setting ``RunComfy.EditorLocale`` through ComfyUI's own
``/settings`` route, so it lands in ``user/default/comfy.settings.json``. Without it (a
graph queued by a script, an editor that never loaded the pack's code) ComfyUI's own
``Comfy.Locale`` setting from the same file is used, and English without either.

The texts are the ones the editor reads, ``locales/<lang>/main.json`` under
``runcomfyNanoBanana2.status`` and ``.errors``: one table per language. English stays the
source: for English nothing changes, the lines are the client's own. What RunComfy says
(its status word, its reason) and the request id are never translated; a translated
error is a headline in the user's language before the unchanged English message, which
is what support needs.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..client.errors import (
    AuthenticationError, InsufficientBalanceError, JobBlockedError, JobCancelledError, JobFailedError,
    JobTimeoutError, MissingTokenError, OfflineError, RateLimitedError, RequestValidationError, RunComfyError,
    SpendLimitError, SubmitOutcomeUnknownError,
)
from ..client.job.updates import JobUpdate, Stage

log = logging.getLogger("runcomfy")

LOCALES = Path(__file__).resolve().parents[1] / "locales"
NAMESPACE = "runcomfyNanoBanana2"
ENGLISH = "en"
# The setting the pack's editor code writes, then ComfyUI's own language setting.
LANGUAGE_SETTINGS = ("RunComfy.EditorLocale", "Comfy.Locale")
SEPARATOR = " — "

# Most specific first: a safety block is also a failed job, a missing token a configuration error.
_HEADLINES: tuple[tuple[type[RunComfyError], str], ...] = (
    (OfflineError, "offline"),
    (MissingTokenError, "noToken"),
    (AuthenticationError, "tokenRejected"),
    (InsufficientBalanceError, "balanceTooLow"),
    (SpendLimitError, "spendLimit"),
    (JobBlockedError, "safetyFilter"),
    (JobFailedError, "jobFailed"),
    (JobTimeoutError, "gaveUpWaiting"),
    (JobCancelledError, "cancelled"),
    (RequestValidationError, "invalidInput"),
    (RateLimitedError, "rateLimited"),
    (SubmitOutcomeUnknownError, "submitOutcomeUnknown"),
)
_STATUS_KEYS = {
    Stage.SUBMITTING: "submitting", Stage.SUBMITTED: "submitted", Stage.RUNNING: "running",
    Stage.FINISHING: "finishing", Stage.OTHER_STATUS: "otherStatus", Stage.RETRYING: "retrying",
    Stage.DOWNLOADING: "downloading", Stage.DONE: "done", Stage.CANCELLING: "cancelling",
    Stage.CANCELLED: "cancelled", Stage.NOT_CANCELLABLE: "notCancellable", Stage.REUSED: "reused",
    Stage.RESUMING: "resuming",
}
_IMAGE_COUNT = re.compile(r"(\d+) image\(s\)")


def settings_file() -> Path | None:
    """ComfyUI's settings file of its default user, or None outside ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return None
    return Path(folder_paths.get_user_directory()) / "default" / "comfy.settings.json"


def user_locale(path: Path | None = None) -> str:
    """The editor's language as a shipped locale code (``fr``, ``zh-TW``...), else English.

    Read at every run, so a language change in the editor shows from the next run.
    """
    path = path if path is not None else settings_file()
    try:
        stored = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    except (OSError, ValueError):
        stored = {}
    for name in LANGUAGE_SETTINGS:
        value = stored.get(name) if isinstance(stored, dict) else None
        if isinstance(value, str) and value:
            return shipped(value)
    return ENGLISH


def shipped(locale: str) -> str:
    """``locale`` if the pack ships it, else its base language (``pt-PT`` -> ``pt``), else English."""
    for candidate in (locale, locale.split("-")[0]):
        if (LOCALES / candidate / "main.json").is_file():
            return candidate
    return ENGLISH


@lru_cache(maxsize=None)
def _catalog(locale: str) -> dict[str, Any]:
    try:
        return json.loads((LOCALES / locale / "main.json").read_text(encoding="utf-8")).get(NAMESPACE, {})
    except (OSError, ValueError):
        log.warning("the %s texts cannot be read; showing English", locale, exc_info=True)
        return {}


def text(locale: str, key: str, **params: Any) -> str:
    """The text for ``key`` (``status.running``) in ``locale``, English when it lacks one."""
    for source in (locale, ENGLISH):
        value: Any = _catalog(source)
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            return re.sub(r"\{(\w+)\}", lambda m: str(params.get(m.group(1), m.group(0))), value)
    return key


# Unicode bidi isolates (UAX #9): right-to-left, first-strong, and their end.
RTL_ISOLATE, FIRST_STRONG_ISOLATE, POP_ISOLATE = "\u2067", "\u2068", "\u2069"
ISOLATES = ("\u2066", RTL_ISOLATE, FIRST_STRONG_ISOLATE)


def right_to_left(locale: str) -> bool:
    """Whether ``locale`` is written right to left: its own ``direction`` entry (ar, fa, he say ``rtl``)."""
    return text(locale, "direction") == "rtl"


def isolated(locale: str, value: Any) -> str:
    """``value`` (a request id, a price, a model id) kept in its own direction inside a right-to-left line:
    without it ``$0.08`` shows as ``0.08$`` after Arabic letters and an id's ``…`` lands on its other side."""
    value = str(value)
    if not right_to_left(locale) or not value or value.startswith(ISOLATES):
        return value
    return f"{FIRST_STRONG_ISOLATE}{value}{POP_ISOLATE}"


def shown(locale: str, key: str, **params: Any) -> str:
    """``text`` as the editor shows it: in a right-to-left locale the line is a right-to-left isolate and
    every value in it a first-strong one, so an editor page laid out left to right keeps the reading order
    (the pack's web/common/i18n.js does the same for the badges and the settings panel)."""
    return directed(locale, text(locale, key, **isolating(locale, params)))


def isolating(locale: str, params: dict[str, Any]) -> dict[str, str]:
    return {name: isolated(locale, value) for name, value in params.items()}


def directed(locale: str, line: str) -> str:
    """A whole line of ``locale``, in its direction (unchanged for a left-to-right one)."""
    return f"{RTL_ISOLATE}{line}{POP_ISOLATE}" if right_to_left(locale) and line else line


def status_line(update: JobUpdate, locale: str) -> str:
    """One job update as the node's status line; English is the client's own wording."""
    return update.describe() if locale == ENGLISH else catalogued_status(update, locale)


def catalogued_status(update: JobUpdate, locale: str) -> str:
    """The catalogue's line for ``update`` (for English: what translators translate)."""
    params: dict[str, Any] = {"id": update.request_id or "", "status": update.status, "detail": update.detail or "",
                              "when": update.detail or ""}
    key = _STATUS_KEYS.get(update.stage)
    if update.stage is Stage.QUEUED:
        key = "queued" if update.queue_position is None else "queuedAt"
        params["position"] = update.queue_position
    elif update.stage is Stage.DOWNLOADING:
        count = _IMAGE_COUNT.fullmatch(update.detail or "")
        if count is None:
            return update.describe()
        params["count"] = count.group(1)
    elif update.stage is Stage.DONE:
        cost = update.detail or ""
        params["cost"] = cost if cost.startswith("$") else shown(locale, "badges.costNotReported")
    if key is None:
        return update.describe()
    line = text(locale, f"status.{key}", **isolating(locale, params))
    return directed(locale, line.removesuffix(" · ") if not update.request_id else line)


def finished_line(locale: str, english: str, *, model_id: str | None, request_id: str, status: str,
                  cost: float | None, reused_from: str | None, collected: bool, count: int, width: int,
                  height: int) -> str:
    """The status line of a finished run (``english``: the same line in the client's words)."""
    if locale == ENGLISH:
        return english
    if reused_from is not None:
        price = shown(locale, "status.reused", id=request_id, when=reused_from)
    else:
        price = f"${cost:.3f}" if cost is not None else shown(locale, "badges.costNotReported")
        if collected:
            price = shown(locale, "status.collectedPrice", price=price)
    model = f"{isolated(locale, model_id)} · " if model_id else ""  # the separator stays outside the isolate
    return shown(locale, "status.finished", model=model, id=request_id, status=status, price=price, count=count,
                 width=width, height=height)


def headline_key(error: RunComfyError, last_stage: Stage | None = None) -> str | None:
    """Which headline an error gets (``errors.<key>``); None for the rare ones, shown as they are."""
    if isinstance(error, JobCancelledError) and last_stage is Stage.NOT_CANCELLABLE:
        return "notCancellable"
    return next((key for kind, key in _HEADLINES if isinstance(error, kind)), None)


def with_headline(locale: str, key: str | None, message: str) -> str:
    """``message`` led by its headline in ``locale``; unchanged in English, or when it already has one."""
    if locale == ENGLISH or key is None:
        return message
    if any(message.startswith(text(locale, f"errors.{known}") + SEPARATOR) for known in _headline_keys()):
        return message  # led by a headline already (an error raised again after the node showed it)
    return f"{text(locale, f'errors.{key}')}{SEPARATOR}{message}"


def _headline_keys() -> tuple[str, ...]:
    return (*(key for _, key in _HEADLINES), "notCancellable", "stoppedBeforeSubmit")


def in_user_language(error: RunComfyError, locale: str, last_stage: Stage | None = None) -> RunComfyError:
    """``error`` itself, its message led by a headline in ``locale``: type, request id and reason unchanged."""
    message = with_headline(locale, headline_key(error, last_stage), error.message)
    if message != error.message:
        error.message = message
        error.args = (message,)
    return error


def keys_used() -> set[str]:
    """Every key this module looks up: the locale tests hold English to exactly these (with the editor's)."""
    status = {*_STATUS_KEYS.values(), "queued", "queuedAt", "finished", "collectedPrice"}
    return {*(f"status.{key}" for key in status), *(f"errors.{key}" for key in _headline_keys()), "badges.costNotReported",
            "direction"}
