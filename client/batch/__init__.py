"""Many jobs from one file: read and check it all, price it, run it, write the manifest.

One module each: ``jobfile`` (JSONL/CSV lines -> checked requests, or errors
with line numbers), ``plan`` (what is free, what will be paid, the estimate),
``runner`` (up to the account's slots at once through ``job.Jobs``, Stop, the
budget), ``manifest`` (file names and ``manifest.jsonl``/``.csv``) and
``progress`` (what the user sees while it runs). Plain Python: no ComfyUI, no torch.
"""
