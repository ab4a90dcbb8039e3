"""What the model accepts: its published schemas, the pack's own rules, and the request body.

Everything here runs before a paid call, so a refusal costs nothing.
"""
