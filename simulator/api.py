"""The /v1 endpoints: submit, status, result, cancel and the model catalog.

Shapes follow ``/work/shared/runcomfy-api.md``: bodies, error codes, the
status -> result -> cancel lifecycle. Each method takes an ``Incoming`` and
returns a ``Reply``; it never touches the socket, so faults can be layered on
top by the handler. The order of checks is the one a real gateway + backend
would use: token, model id, JSON, schema, inline images, balance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from ..client.schemas import EDIT, MODEL_IDS, get_schema
from .billing import BASE_RESOLUTION, PRICES_USD, PRICING_NOTE, Account, micros_to_usd, price_micros
from ..client.config import is_loopback_host
from .inputs import parse_image_urls
from .jobs import CANCELLED, FINISHED, IN_QUEUE, COMPLETED, Job, JobStore, SubmitRefused, iso_utc
from .options import Options
from .wire import Reply, error_reply, json_reply
from .work import RenderPool

TRUE_WORDS = ("1", "true", "yes", "on")


@dataclass
class Incoming:
    """One parsed request, plus what the handler should log about it.

    ``token`` lives only here, for the duration of the request; it is never
    copied into the log or a job.
    """

    method: str
    path: str
    query: dict[str, str]
    token: str | None = field(repr=False)
    auth_header_sent: bool
    body: bytes
    base_url: str
    account: str | None = None
    request_id: str | None = None
    model_id: str | None = None
    note: str | None = None

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").strip().lower() in TRUE_WORDS


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class Api:
    """Endpoint logic over a ``JobStore`` and a ``RenderPool``."""

    def __init__(self, store: JobStore, pool: RenderPool, options: Callable[[], Options]) -> None:
        self._store = store
        self._pool = pool
        self._options = options

    # -- shared checks ---------------------------------------------------------
    def authenticate(self, req: Incoming) -> Account | Reply:
        """The caller's account, or the documented 400004 error (never echoing the token)."""
        account = self._store.account_for_token(req.token)
        if account is not None:
            req.account = account.name
            return account
        if req.auth_header_sent and req.token:
            message = "Invalid or expired API token, or inactive account; create a new token in your RunComfy profile"
        else:
            message = "Missing API token: send 'Authorization: Bearer <token>'"
        return error_reply(self._options().auth_error_status, 400004, message,
                           headers=[("WWW-Authenticate", 'Bearer realm="runcomfy"')])

    def _model_caller(self, req: Incoming, model_id: str, unknown_status: int) -> Account | Reply:
        """The caller's account for a model route, or its 400004 / 400001 error.

        An unknown model is HTTP 400 on submit and 404 on the catalog read,
        with code 400001 either way.
        """
        req.model_id = model_id
        account = self.authenticate(req)
        if isinstance(account, Reply) or model_id in MODEL_IDS:
            return account
        return error_reply(unknown_status, 400001, f"Unknown model id {model_id!r}")

    def _owned_job(self, req: Incoming, request_id: str) -> Job | Reply:
        account = self.authenticate(req)
        if isinstance(account, Reply):
            return account
        job = self._store.get(request_id)
        if job is None:
            return error_reply(404, 404001, f"Request {request_id} not found: unknown, deleted or expired")
        if job.account != account.name:
            return error_reply(403, 403001, f"Request {request_id} belongs to another user")
        req.model_id = job.model_id
        return job

    @staticmethod
    def _urls(base_url: str, request_id: str) -> dict[str, str]:
        prefix = f"{base_url}/v1/requests/{request_id}"
        return {"status_url": f"{prefix}/status", "result_url": f"{prefix}/result", "cancel_url": f"{prefix}/cancel"}

    # -- submit ----------------------------------------------------------------
    def submit(self, req: Incoming, model_id: str) -> Reply:
        account = self._model_caller(req, model_id, unknown_status=400)
        if isinstance(account, Reply):
            return account
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return _validation_error([(None, f"Body is not valid JSON: {exc}", "json_invalid")])
        if not isinstance(body, dict):
            return _validation_error([(None, "Body must be a JSON object", "type_error")])
        schema = get_schema(model_id)
        problems = [(issue.field, issue.message, "value_error") for issue in schema.issues(body, local_api=True)]
        if problems:
            return _validation_error(problems)
        inputs = {**schema.defaults(), **body}
        images = []
        if model_id == EDIT:
            images, bad = parse_image_urls(list(inputs["image_urls"]))
            if bad:
                return _validation_error([(name, message, "value_error") for name, message in bad])
        options = self._options()
        try:
            job = self._store.create(
                model_id=model_id,
                account=account,
                inputs=_without_inline_data(inputs),
                images=images,
                cost_micros=price_micros(inputs["resolution"], inputs["num_images"]),
                queue_seconds=options.queue_seconds,
                run_seconds=options.run_seconds,
                refund_on_failure=options.refund_failed,
                max_active_jobs=options.max_active_jobs,
            )
        except SubmitRefused as refused:
            headers = [("Retry-After", str(refused.retry_after))] if refused.retry_after else None
            return error_reply(refused.status, refused.error_code, str(refused), headers=headers)
        req.request_id = job.request_id
        self._pool.submit(job)
        return json_reply(200, {"request_id": job.request_id, **self._urls(req.base_url, job.request_id)})

    # -- status / result / cancel ---------------------------------------------
    def _status_body(self, job: Job, base_url: str, now: float) -> dict[str, Any]:
        state = job.status_state(now)
        urls = self._urls(base_url, job.request_id)
        body: dict[str, Any] = {
            "request_id": job.request_id,
            "status": job.status_word(state, self._options().status_words),
            "status_url": urls["status_url"],
            "result_url": urls["result_url"],
        }
        if state == IN_QUEUE:
            body["queue_position"] = self._store.queue_position(job, now)
        return body

    def status(self, req: Incoming, request_id: str) -> Reply:
        job = self._owned_job(req, request_id)
        if isinstance(job, Reply):
            return job
        return json_reply(200, self._status_body(job, req.base_url, self._store.now()))

    def result(self, req: Incoming, request_id: str) -> Reply:
        job = self._owned_job(req, request_id)
        if isinstance(job, Reply):
            return job
        now = self._store.now()
        state = job.state(now)
        if state not in FINISHED:
            return json_reply(200, self._status_body(job, req.base_url, now))
        options = self._options()
        error = job.error(now)
        body: dict[str, Any] = {
            "request_id": job.request_id,
            "status": job.status_word(state, options.status_words),
            "output": self._output(job, req.base_url) if state == COMPLETED else None,
            "created_at": iso_utc(job.created_wall),
            "finished_at": iso_utc(job.finished_wall(now) or job.created_wall),
            "error": None if error is None else (
                error[0] if options.error_style == "string" else {"message": error[0], "code": error[1]}
            ),
        }
        if options.result_model_id:
            body["model_id"] = job.model_id
        if req.flag("include_cost"):
            body["cost"] = micros_to_usd(job.net_cost_micros(now))
        return json_reply(200, body)

    def _output(self, job: Job, base_url: str) -> dict[str, Any]:
        base = file_base(job.script.output_host, base_url)
        ext = {"png": "png", "jpeg": "jpg", "webp": "webp"}[job.inputs.get("output_format", "png")]
        urls = [f"{base}/files/{job.request_id}/{index}.{ext}" for index in range(job.num_images)]
        style = self._options().output_style
        if style == "image" and len(urls) == 1:
            return {"image": urls[0]}
        if style == "both" and urls:
            return {"image": urls[0], "images": urls}
        return {"images": urls}

    def cancel(self, req: Incoming, request_id: str) -> Reply:
        job = self._owned_job(req, request_id)
        if isinstance(job, Reply):
            return job
        words = self._options().status_words
        if self._store.cancel(job):
            body = {"request_id": job.request_id, "status": job.status_word(CANCELLED, words),
                    "outcome": "cancellation_requested"}
        else:
            state = job.status_state(self._store.now())
            body = {"request_id": job.request_id, "status": job.status_word(state, words),
                    "outcome": "not_cancellable"}
        style = self._options().cancel_body
        if style == "status":
            del body["outcome"]
        elif style == "outcome":
            del body["status"]
        return json_reply(200, body)

    # -- catalog ---------------------------------------------------------------
    def model(self, req: Incoming, model_id: str) -> Reply:
        account = self._model_caller(req, model_id, unknown_status=404)
        if isinstance(account, Reply):
            return account
        body: dict[str, Any] = {
            "model_id": model_id,
            "base_price_usd": PRICES_USD[BASE_RESOLUTION],
            "price_unit": "output",
            "pricing_note": PRICING_NOTE,
        }
        if req.flag("include_schema"):
            body["schema"] = json.loads(json.dumps(get_schema(model_id).input_schema))
        return json_reply(200, body)


def file_base(output_host: str | None, base_url: str) -> str:
    """Where output files appear to live.

    A loopback host keeps the simulator's scheme and port (e.g. 127.0.0.2, a
    different host that still answers on Linux when the simulator binds it);
    a name becomes ``https://name`` (e.g. the real CDN, which must never be
    reached from tests); a full ``scheme://host[:port]`` is used as given.
    """
    if not output_host:
        return base_url
    if "://" in output_host:
        return output_host.rstrip("/")
    if is_loopback_host(output_host):
        parts = urlsplit(base_url)
        host = f"[{output_host}]" if ":" in output_host else output_host
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"
    return f"https://{output_host}"


def _without_inline_data(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as kept on the job: data URIs shortened, their bytes live in
    ``Job.images`` until rendered (a long session must not hoard 64 MiB bodies)."""
    if "image_urls" not in inputs:
        return inputs
    kept = [
        f"{url[: url.index(',') + 1]}...({len(url)} chars)" if url[:5].lower() == "data:" else url
        for url in inputs["image_urls"]
    ]
    return {**inputs, "image_urls": kept}


def _validation_error(problems: list[tuple[str | None, str, str]]) -> Reply:
    """422 with 422001 and a FastAPI-style ``detail`` list, one entry per problem."""
    detail = [
        {"loc": ["body"] if name is None else ["body", name], "msg": message, "type": kind}
        for name, message, kind in problems
    ]
    first_name, first_message, _ = problems[0]
    summary = first_message if first_name is None else f"{first_name}: {first_message}"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return error_reply(422, 422001, f"Invalid input: {summary}{more}", detail=detail)
