"""The numbers that bound a request and a job, each defined once.

Where a number comes from RunComfy's docs or its own clients, the comment
says so; the rest are this pack's choices, derived from those.
"""

from __future__ import annotations

MIB = 1024 * 1024

# RunComfy's own ComfyUI nodes keep a whole JSON request body under 64 MiB...
MAX_BODY_BYTES = 64 * MIB
# ...and every inline image under 6 MiB and 32 MP.
MAX_INLINE_IMAGE_BYTES = 6 * MIB
# Gemini's image models work at up to about 4K; larger inputs only cost
# upload time, so they are downscaled to this many pixels before sending.
MAX_INPUT_PIXELS = 4096 * 4096
# Room left in the body for the prompt and the other fields.
BODY_RESERVE_BYTES = 2 * MIB
# Base64 makes 4 bytes of every 3: this is what all inline images may weigh
# together, encoded, so that the body stays within MAX_BODY_BYTES.
MAX_INLINE_IMAGES_BYTES = (MAX_BODY_BYTES - BODY_RESERVE_BYTES) * 3 // 4

# A result file larger than this is refused while it streams in: a 4K PNG
# is about 30 MiB, twice that is no plausible result.
MAX_RESULT_FILE_BYTES = 64 * MIB

# Gemini takes a signed 32-bit seed; the schema leaves it unbounded.
SEED_MIN, SEED_MAX = 0, 2**31 - 1
# Far beyond any real prompt (Gemini's input context holds ~32k tokens with
# the images); a longer "prompt" is a pasted file, and would be billed.
MAX_PROMPT_CHARS = 20_000

# How long a job is followed after its submit was accepted before the pack
# stops waiting (and cancels it if it is still queued). Free calls that fail
# are repeated, with backoff, until then.
JOB_DEADLINE_SECONDS = 900.0
# Result files are fetched until the job's deadline, but never with less than
# this much time once the job is done...
DOWNLOAD_SECONDS = 300.0
# ...each attempt at one file is given up after this long (a trickling host).
FILE_SECONDS = 120.0
# The very same cut-off bytes (same length and SHA-256) this many downloads
# in a row mean RunComfy's stored file is damaged, not the transfer: retrying
# for DOWNLOAD_SECONDS would only make the user wait for the same answer.
SAME_CUT_LIMIT = 3
# A cancel (after Stop or at the deadline) is retried for this long.
CANCEL_SECONDS = 30.0
# Just after a submit, RunComfy may not know the new request id yet: a 404 in
# this window is repeated like an outage, later it means "expired".
NOT_FOUND_GRACE_SECONDS = 30.0
