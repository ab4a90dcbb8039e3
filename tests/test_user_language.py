"""The status line and the errors users meet most follow the editor's language, on the server side.

The nodes run without ComfyUI against the simulator; ComfyUI's settings file is a temporary
one, written as ComfyUI's /settings route writes it. English is the fallback, and what
RunComfy says (status word, reason) and the request id are never translated.
"""

from __future__ import annotations

import json
import re
import sys
import types

import anyio
import pytest

from helpers import widget_defaults
from packloader import load_pack, pack_import

pack = load_pack()
errors = pack_import("client.errors")
updates = pack_import("client.job.updates")
comfy_runtime = pack_import("nodes.comfy_runtime")
user_language = pack_import("nodes.user_language")
Stage, JobUpdate = updates.Stage, updates.JobUpdate

TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
RID = "8bb3f7f9-0c1a-4d2e-9f00-123456789abc"


@pytest.fixture
def editor_language(monkeypatch, tmp_path):
    """Set the language as the editor stores it: ``editor_language({"Comfy.Locale": "fr"})``."""
    path = tmp_path / "user" / "default" / "comfy.settings.json"
    path.parent.mkdir(parents=True)
    monkeypatch.setattr(user_language, "settings_file", lambda: path)

    def store(settings: dict) -> None:
        path.write_text(json.dumps(settings), encoding="utf-8")

    return store


@pytest.fixture
def status_texts(monkeypatch):
    """Every status line the node sends to the editor, as ComfyUI's PromptServer would get it."""
    shown: list[str] = []
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(
        instance=types.SimpleNamespace(send_progress_text=lambda text, node_id: shown.append(text))
    )
    monkeypatch.setitem(sys.modules, "server", server)
    return shown


# -- which language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"RunComfy.EditorLocale": "zh-TW", "Comfy.Locale": "fr"}, "zh-TW"),  # what the editor shows wins
        ({"Comfy.Locale": "ja"}, "ja"),  # ComfyUI's own setting when the pack's code never ran
        ({"Comfy.Locale": "pt-BR"}, "pt-BR"),
        ({"RunComfy.EditorLocale": "fr-CA"}, "fr"),  # a browser language: its base language
        ({"Comfy.Locale": "de"}, "en"),  # not shipped: English
        ({}, "en"),
    ],
)
def test_the_language_is_read_from_comfyuis_settings(editor_language, settings, expected):
    editor_language(settings)
    assert user_language.user_locale() == expected


def test_without_a_readable_settings_file_the_language_is_english(monkeypatch, tmp_path):
    broken = tmp_path / "comfy.settings.json"
    broken.write_text("{not json", encoding="utf-8")
    assert user_language.user_locale(broken) == "en"
    assert user_language.user_locale(tmp_path / "missing.json") == "en"
    monkeypatch.setattr(user_language, "settings_file", lambda: None)  # outside ComfyUI
    assert user_language.user_locale() == "en"


# -- the status line -------------------------------------------------------------------------------

UPDATES = [
    JobUpdate(Stage.SUBMITTING),
    JobUpdate(Stage.SUBMITTED, RID),
    JobUpdate(Stage.QUEUED, RID, "in_queue"),
    JobUpdate(Stage.QUEUED, RID, "in_queue", queue_position=3),
    JobUpdate(Stage.RUNNING, RID, "in_progress"),
    JobUpdate(Stage.FINISHING, RID, "completed"),
    JobUpdate(Stage.OTHER_STATUS, RID, "warming_up"),
    JobUpdate(Stage.RETRYING, RID, detail="HTTP 503"),
    JobUpdate(Stage.DOWNLOADING, RID, detail="2 image(s)"),
    JobUpdate(Stage.DONE, RID, "completed", detail="$0.080"),
    JobUpdate(Stage.DONE, RID, "completed", detail="cost not reported"),
    JobUpdate(Stage.CANCELLING, RID),
    JobUpdate(Stage.CANCELLED, RID, "cancelled"),
    JobUpdate(Stage.NOT_CANCELLABLE, RID, "not_cancellable"),
    JobUpdate(Stage.REUSED, RID, detail="2026-12-01 10:00"),
    JobUpdate(Stage.RESUMING, RID),
]


@pytest.mark.parametrize("update", UPDATES, ids=lambda u: f"{u.stage.value}-{u.queue_position}-{u.detail}")
def test_englishs_status_texts_are_the_clients_own_words(update):
    """English is not re-worded, and its catalogue (what translators translate) says the same."""
    assert user_language.status_line(update, "en") == update.describe()
    assert user_language.catalogued_status(update, "en") == update.describe()


@pytest.mark.parametrize("lang", [p.name for p in user_language.LOCALES.iterdir() if p.name != "en"])
@pytest.mark.parametrize("update", UPDATES, ids=lambda u: f"{u.stage.value}-{u.queue_position}-{u.detail}")
def test_every_locale_words_every_update_and_keeps_what_runcomfy_says(lang, update):
    marked = user_language.status_line(update, lang)
    assert bool(re.search(BIDI_ISOLATES, marked)) == (lang in RIGHT_TO_LEFT), (lang, marked)
    line = re.sub(BIDI_ISOLATES, "", marked)
    assert line and line != update.describe(), (lang, line)
    if update.request_id and update.stage not in (Stage.REUSED, Stage.RESUMING):
        assert line.endswith(f" · {RID}"), line
    elif update.request_id:
        assert RID in line, line
    for kept in (update.status if update.stage is Stage.OTHER_STATUS else None, update.detail if update.stage in (
            Stage.RETRYING, Stage.REUSED) else None, str(update.queue_position) if update.queue_position else None):
        if kept:
            assert kept in line, (lang, line)
    assert "{" not in line, line


RIGHT_TO_LEFT = ("ar", "fa", "he")
BIDI_ISOLATES = "[\u2066-\u2069]"
RLI, FSI, PDI = "\u2067", "\u2068", "\u2069"


def test_the_right_to_left_locales_say_so_and_the_others_do_not():
    for lang in user_language_locales():
        assert user_language.right_to_left(lang) == (lang in RIGHT_TO_LEFT), lang


def user_language_locales() -> list[str]:
    return sorted(path.name for path in user_language.LOCALES.iterdir() if path.is_dir())


def test_a_right_to_left_line_keeps_ids_prices_and_sizes_in_their_own_direction():
    """The editor lays its page out left to right: an Arabic line is an RTL isolate, its values FSI ones,
    else "$0.080" reads "0.080$" and the id is torn apart (seen in the editor's screenshots)."""
    done = JobUpdate(Stage.DONE, RID, "completed", detail="$0.080")
    assert user_language.status_line(done, "ar") == (
        RLI + user_language.text("ar", "status.done", cost=f"{FSI}$0.080{PDI}", id=f"{FSI}{RID}{PDI}") + PDI)
    assert user_language.status_line(JobUpdate(Stage.SUBMITTING, None, None), "he") == (
        RLI + user_language.text("he", "status.submitting") + PDI)
    finished = user_language.finished_line(
        "fa", "unused", model_id="google/nano-banana-2/edit", request_id=RID, status="completed", cost=0.08,
        reused_from=None, collected=False, count=1, width=1376, height=768)
    assert finished.startswith(f"{RLI}{FSI}google/nano-banana-2/edit{PDI} · ") and finished.endswith(PDI)
    assert f"\u2066{FSI}1376{PDI}×{FSI}768{PDI}{PDI}" in finished, "width×height reads left to right"
    assert f"{FSI}$0.080{PDI}" in finished and f"{FSI}{RID}{PDI}" in finished
    assert not re.search(BIDI_ISOLATES, user_language.status_line(done, "fr"))


def test_french_and_traditional_chinese_lines():
    queued = JobUpdate(Stage.QUEUED, RID, "in_queue", queue_position=3)
    assert user_language.status_line(queued, "fr") == f"en file d’attente (position 3) · {RID}"
    assert user_language.status_line(queued, "zh-TW") == f"排隊中（第 3 位） · {RID}"
    done = JobUpdate(Stage.DONE, RID, "completed", detail="cost not reported")
    assert user_language.status_line(done, "fr") == f"terminé : coût non indiqué · {RID}"


def test_the_finished_line_in_english_is_the_info_line_and_translated_otherwise():
    fields = dict(model_id="google/nano-banana-2/text-to-image", request_id=RID, status="completed", cost=0.08,
                  reused_from=None, collected=False, count=2, width=1024, height=1024)
    english = f"google/nano-banana-2/text-to-image · request {RID} · completed · $0.080 · 2 image(s) 1024×1024"
    assert user_language.finished_line("en", english, **fields) == english
    catalogued = user_language.text("en", "status.finished", model="google/nano-banana-2/text-to-image · ", id=RID,
                                    status="completed", price="$0.080", count=2, width=1024, height=1024)
    assert catalogued == english
    assert user_language.finished_line("ja", english, **fields) == (
        f"google/nano-banana-2/text-to-image · リクエスト {RID} · completed · $0.080 · 2 枚 1024×1024")
    reused = user_language.finished_line("fr", english, **{**fields, "reused_from": "2026-12-01 10:00"})
    assert f"résultat de la requête {RID} du 2026-12-01 10:00 réutilisé, non refacturé" in reused


# -- error headlines -----------------------------------------------------------------------------------

ERRORS = [
    (errors.MissingTokenError("No RunComfy API token found: set one in Settings → RunComfy"), "noToken"),
    (errors.AuthenticationError("RunComfy rejected the API token (HTTP 401)", error_code=400004), "tokenRejected"),
    (errors.InsufficientBalanceError("Your RunComfy balance is too low", request_id=None), "balanceTooLow"),
    (errors.SpendLimitError("The daily spend limit of $1.00 would be passed"), "spendLimit"),
    (errors.JobBlockedError("Blocked by the model's safety filter: SAFETY block", reason="SAFETY block",
                            request_id=RID), "safetyFilter"),
    (errors.JobFailedError("The job failed on RunComfy: GPU fell over", reason="GPU fell over", request_id=RID),
     "jobFailed"),
    (errors.JobTimeoutError("Gave up waiting after 600 s; the job may still finish", request_id=RID), "gaveUpWaiting"),
    (errors.JobCancelledError("The job was cancelled on RunComfy's side", request_id=RID), "cancelled"),
    (errors.RequestValidationError("Invalid input for …: seed: too large", field="seed"), "invalidInput"),
    (errors.RateLimitedError("RunComfy is rate limiting this account"), "rateLimited"),
    (errors.SubmitOutcomeUnknownError("The submit got no answer; NOT re-sent"), "submitOutcomeUnknown"),
]


@pytest.mark.parametrize("error, key", ERRORS, ids=[key for _, key in ERRORS])
def test_errors_get_a_headline_and_keep_the_english_message_the_request_id_and_the_reason(error, key):
    original, kind = error.message, type(error)
    assert user_language.headline_key(error) == key
    for lang in ("fr", "zh-TW", "ar"):
        shown = user_language.with_headline(lang, key, original)
        headline = user_language.text(lang, f"errors.{key}")
        assert shown == f"{headline} — {original}" and headline != user_language.text("en", f"errors.{key}")
    assert user_language.with_headline("en", key, original) == original
    translated = user_language.in_user_language(error, "fr")
    assert translated is error and type(error) is kind
    assert str(error).endswith(original) and str(error).startswith(user_language.text("fr", f"errors.{key}"))
    assert error.request_id == (RID if RID in original else error.request_id)
    if isinstance(error, errors.JobFailedError):
        assert error.reason in str(error)
    user_language.in_user_language(error, "fr")
    assert str(error).count(" — ") == 1  # raised again: one headline, not two


def test_a_job_stopped_while_running_is_not_called_cancelled():
    error = errors.JobCancelledError("Stopped waiting, but RunComfy cannot cancel a job that is already running",
                                     request_id=RID)
    assert user_language.headline_key(error, Stage.NOT_CANCELLABLE) == "notCancellable"
    assert user_language.headline_key(error, Stage.CANCELLED) == "cancelled"


# -- through the node, over the simulator --------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_shows_its_status_line_in_the_editors_language(account, editor_language, status_texts):
    editor_language({"RunComfy.EditorLocale": "fr"})
    await TextToImage().run(unique_id="1", **{**widget_defaults(TextToImage), "resolution": "0.5K"})
    (request_id,) = account.jobs
    assert "envoi" in status_texts
    assert f"envoyé · {request_id}" in status_texts
    assert status_texts[-1].startswith("google/nano-banana-2/text-to-image · requête " + request_id + " · completed")
    assert all("submitted" not in text for text in status_texts)


@pytest.mark.anyio
async def test_english_status_lines_are_unchanged(account, editor_language, status_texts):
    editor_language({})
    _, info = (await TextToImage().run(unique_id="1", **{**widget_defaults(TextToImage), "resolution": "0.5K"}))["result"]
    (request_id,) = account.jobs
    assert f"submitted · {request_id}" in status_texts
    assert status_texts[-1] == info.splitlines()[0]


@pytest.mark.anyio
async def test_no_token_is_said_in_the_editors_language_before_anything_is_sent(account, editor_language, monkeypatch):
    monkeypatch.delenv("RUNCOMFY_API_TOKEN")
    editor_language({"Comfy.Locale": "zh-TW"})
    with pytest.raises(errors.MissingTokenError) as caught:
        await TextToImage().run(unique_id="1", **widget_defaults(TextToImage))
    assert str(caught.value).startswith("沒有 RunComfy API 權杖 — ")
    assert "RUNCOMFY_API_TOKEN" in str(caught.value)  # the English detail that says where to set it
    assert account.requests() == []


@pytest.mark.anyio
async def test_a_failed_job_keeps_runcomfys_reason_and_request_id_after_the_headline(account, editor_language):
    editor_language({"Comfy.Locale": "ja"})
    account.script_next_jobs("failed")
    with pytest.raises(errors.JobFailedError) as caught:
        await TextToImage().run(unique_id="1", **{**widget_defaults(TextToImage), "resolution": "0.5K"})
    (request_id,) = account.jobs
    message = str(caught.value)
    assert message.startswith("RunComfy でジョブが失敗しました — ")
    assert request_id in message and caught.value.reason and caught.value.reason in message


@pytest.mark.anyio
async def test_stop_while_queued_says_cancelled_in_the_editors_language(account, editor_language, status_texts,
                                                                        monkeypatch):
    editor_language({"RunComfy.EditorLocale": "ko"})
    account.script_next_jobs("queued_forever")
    monkeypatch.setattr(comfy_runtime, "processing_interrupted", lambda: bool(account.jobs))
    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError) as caught:
        await TextToImage().run(unique_id="1", **widget_defaults(TextToImage))
    (request_id,) = account.jobs
    assert f"취소됨 · {request_id}" in status_texts
    assert status_texts[-1].startswith("RunComfy에서 취소됨 — Cancelled on RunComfy while still queued")
    assert str(caught.value) == status_texts[-1]  # one headline, though the error passes the node twice
    assert len(account.requests(route="cancel")) == 1

