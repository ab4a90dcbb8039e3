"""The RunComfy account: where the token comes from, who it belongs to, how much is left, signing in.

One module per concern:

- ``sources``    the token's order of precedence (environment, ``token.json``, the old ``api_token``).
- ``token_text`` whether a piece of text can be a token (checked before it is sent or stored).
- ``token_file`` ``token.json`` in RunComfy's CLI's own format.
- ``saving``     storing and removing a token: ``token.json``, the old place emptied, "saved here" remembered.
- ``identity``   who am I (``GET {www}/api/auth/me``): the one real token check.
- ``balance``    how much is left (``GET {api}/prod/v2/balance``).
- ``cache``      both, cached briefly per account; the balance forgotten after each paid job.
- ``device``     the device sign-in of ``runcomfy login``: start, poll (the one place that waits), cancel.

Paths are ``config.paths``'; HTTP is ``transport.api``'s one client.
"""
