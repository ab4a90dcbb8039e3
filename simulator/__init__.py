"""A local RunComfy-compatible Model API server (and account endpoints) for tests, demos and benchmarks.

No machine of this project reaches RunComfy, so the client is exercised over
real HTTP against this simulator, which follows ``runcomfy-api.md`` (shapes,
error codes, lifecycle) and lets tests inject every failure the real service
may produce. It never imports torch or ComfyUI, and never touches the network
beyond loopback.

Modules, one job each:

- ``server``     ``Simulator``: start/stop of its three bases (model API, www, api),
                 accounts, faults, scripts, sign-ins, log access.
- ``handler``    HTTP/1.1 transport: reading requests, writing (slow) answers.
- ``routes``     routing, fault application and logging of each request.
- ``api``        the /v1 endpoints (submit, status, result, cancel, model).
- ``account_api`` the www and api endpoints: auth/me, device sign-in, balance.
- ``signin``     device sign-ins: pending, approved (a fresh token), denied, expired.
- ``catalog``    the two models and their input schemas, from the model pages.
- ``validation`` the submit-time check of a body, as the server does it.
- ``files``      the CDN-like output file route and its faults.
- ``control``    ``/_sim/*`` endpoints for out-of-process users.
- ``jobs``       job lifecycle, job scripts, the store with accounts and billing.
- ``billing``    prices (invented, in selectable shapes) and money units.
- ``faults``     fault rules and their bookkeeping.
- ``inputs``     data-URI decoding and loopback-only fetching of input images.
- ``images``     deterministic, correctly sized output images (and broken ones).
- ``work``       background rendering pool.
- ``log``        the secret-free request log.
- ``options``    switches for behaviour the docs leave unconfirmed.
- ``wire``       ``Incoming`` and ``Reply``, the shapes between socket and endpoints.
- ``cli``        ``python <pack folder> simulator`` (the pack's command line).

It shares no code with the client it tests (it never imports ``client/`` or
httpx). Nothing is imported here, so loading one module stays cheap.
"""
