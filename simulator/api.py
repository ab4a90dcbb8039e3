"""The /v1 endpoints: submit, status, result, cancel and the model catalog.

Shapes follow ``/work/shared/runcomfy-api.md``: bodies, error codes, the
status -> result -> cancel lifecycle. Each method takes an ``Incoming`` and
returns a ``Reply``; it never touches the socket, so faults can be layered on
top by the router. The order of checks is the one a real gateway + backend
would use: token, model id, JSON, schema, inline images, balance.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from .billing import Account, micros_to_usd, model_pricing, price_micros
from .catalog import MODEL_IDS, catalog_entry, input_schema
from .files import file_urls
from .jobs import CANCELLED, FINISHED, IN_QUEUE, COMPLETED, Job, JobStore, SubmitRefused, iso_utc
from .options import Options
from .validation import Problem, validate
from .wire import Incoming, Reply, error_reply, json_reply
from .work import RenderPool


DEFAULT_PAGE, MAX_PAGE = 20, 100  # catalog page sizes; RunComfy's are unconfirmed


class Api:
    """Endpoint logic over a ``JobStore`` and a ``RenderPool``."""

    def __init__(self, store: JobStore, pool: RenderPool, options: Callable[[], Options]) -> None:
        self._store = store
        self._pool = pool
        self._options = options

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
        return self._error(401, 400004, message, headers=[("WWW-Authenticate", 'Bearer realm="runcomfy"')])

    def _error(self, natural: int, error_code: int, message: str, **extra: Any) -> Reply:
        """RunComfy's error body for ``error_code``, on the HTTP status ``Options.error_statuses``
        pairs it with (``natural``, the route's own choice, unless configured otherwise)."""
        return error_reply(self._options().status_for(error_code, natural), error_code, message, **extra)

    def _model_caller(self, req: Incoming, model_id: str, unknown_status: int) -> Account | Reply:
        """The caller's account for a model route, or its 400004 / 400001 error.

        An unknown model is HTTP 400 on submit and 404 on the catalog read,
        with code 400001 either way.
        """
        req.model_id = model_id
        account = self.authenticate(req)
        if isinstance(account, Reply) or model_id in MODEL_IDS:
            return account
        return self._error(unknown_status, 400001, f"Unknown model id {model_id!r}")

    def _owned_job(self, req: Incoming, request_id: str) -> Job | Reply:
        account = self.authenticate(req)
        if isinstance(account, Reply):
            return account
        job = self._store.get(request_id)
        if job is None:
            return self._error(404, 404001, f"Request {request_id} not found: unknown, deleted or expired")
        if job.account != account.name:
            return self._error(403, 403001, f"Request {request_id} belongs to another user")
        req.model_id = job.model_id
        return job

    @staticmethod
    def _urls(base_url: str, request_id: str) -> dict[str, str]:
        prefix = f"{base_url}/v1/requests/{request_id}"
        return {"status_url": f"{prefix}/status", "result_url": f"{prefix}/result", "cancel_url": f"{prefix}/cancel"}

    def submit(self, req: Incoming, model_id: str) -> Reply:
        account = self._model_caller(req, model_id, unknown_status=400)
        if isinstance(account, Reply):
            return account
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return self._validation_error([(None, f"Body is not valid JSON: {exc}")], "json_invalid")
        options = self._options()
        inputs, images, problems = validate(model_id, body, options.input_rules)
        if problems:
            return self._validation_error(problems, "value_error" if isinstance(body, dict) else "type_error")
        try:
            job = self._store.create(
                model_id=model_id,
                account=account,
                inputs=_without_inline_data(inputs),
                images=images,
                cost_micros=price_micros(inputs["resolution"], inputs["num_images"], options.pricing),
                queue_seconds=options.queue_seconds,
                run_seconds=options.run_seconds,
                refund_on_failure=options.refund_failed,
                max_active_jobs=options.max_active_jobs,
            )
        except SubmitRefused as refused:
            headers = [("Retry-After", str(refused.retry_after))] if refused.retry_after else None
            return self._error(refused.status, refused.error_code, str(refused), headers=headers)
        req.request_id = job.request_id
        self._pool.submit(job)
        return json_reply(200, {"request_id": job.request_id, **self._urls(req.base_url, job.request_id)})

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
        if state == COMPLETED and job.script.output == "absent":
            del body["output"]
        if options.result_model_id:
            body["model_id"] = job.model_id
        if req.flag("include_cost") and options.report_cost:
            body["cost"] = micros_to_usd(job.net_cost_micros(now))
        return json_reply(200, body)

    def _output(self, job: Job, base_url: str) -> dict[str, Any] | None:
        script = job.script
        if script.output != "files":  # the scripted odd shapes; "null" and "absent" both start as None
            return {"no_images": {"images": []}, "empty": {}}.get(script.output)
        urls = file_urls(job, base_url)
        if script.output_urls is not None:
            urls = [url.replace("{url}", urls[i % len(urls)]) for i, url in enumerate(script.output_urls)]
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
                    "outcome": self._options().cancel_outcome}
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

    def model(self, req: Incoming, model_id: str) -> Reply:
        if self._options().public_catalog:
            req.model_id = model_id
            self._note_caller(req)
            if model_id not in MODEL_IDS:
                return self._error(404, 400001, f"Unknown model id {model_id!r}")
        else:
            account = self._model_caller(req, model_id, unknown_status=404)
            if isinstance(account, Reply):
                return account
        return json_reply(200, self._entry(model_id, req.flag("include_schema")))

    def models(self, req: Incoming) -> Reply:
        """``GET /v1/models?search=&category=&limit=&offset=`` -> ``{"models", "total"}``."""
        if self._options().public_catalog:
            self._note_caller(req)
        else:
            account = self.authenticate(req)
            if isinstance(account, Reply):
                return account
        problems: list[Problem] = []
        limit = _whole_number(req.query, "limit", DEFAULT_PAGE, 1, MAX_PAGE, problems)
        offset = _whole_number(req.query, "offset", 0, 0, None, problems)
        if problems:
            return self._validation_error(problems, "int_parsing", where="query")
        search = req.query.get("search", "").strip().lower()
        category = req.query.get("category", "").strip().lower()
        found = [
            entry for entry in (self._entry(model_id, req.flag("include_schema")) for model_id in MODEL_IDS)
            if (not search or search in entry["model_id"].lower() or search in entry["display_name"].lower())
            and (not category or category in (c.lower() for c in entry["categories"]))
        ]
        return json_reply(200, {"models": found[offset: offset + limit], "total": len(found)})

    def _note_caller(self, req: Incoming) -> None:
        """On a public route: log the caller's account when its token is known, refuse nothing."""
        account = self._store.account_for_token(req.token)
        req.account = account.name if account is not None else None

    def _entry(self, model_id: str, with_schema: bool) -> dict[str, Any]:
        """One catalog entry as RunComfy's catalog states it (runcomfy-api.md, "Model catalog")."""
        body: dict[str, Any] = {"model_id": model_id, **catalog_entry(model_id), **model_pricing(self._options().pricing)}
        if with_schema:
            body["schema"] = input_schema(model_id)
        return body

    def _validation_error(self, problems: list[Problem], kind: str, where: str = "body") -> Reply:
        """422 (unless paired otherwise) with 422001 and a FastAPI-style ``detail`` list, one entry per problem."""
        detail = [
            {"loc": [where] if name is None else [where, name], "msg": message, "type": kind}
            for name, message in problems
        ]
        first_name, first_message = problems[0]
        summary = first_message if first_name is None else f"{first_name}: {first_message}"
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        return self._error(422, 422001, f"Invalid input: {summary}{more}", detail=detail)

    def model_of(self, request_id: str | None) -> str | None:
        """The model of a known job, for logging and fault matching."""
        job = self._store.get(request_id) if request_id else None
        return job.model_id if job else None


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


def _whole_number(query: dict[str, str], name: str, default: int, low: int, high: int | None,
                  problems: list[Problem]) -> int:
    """A paging parameter of the catalog list, or ``default``; a bad one is added to ``problems``."""
    text = query.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bound = f"from {low} to {high}" if high is not None else f"{low} or more"
        problems.append((name, f"must be a whole number {bound}, got {text!r}"))
        return default
    return int(text)
