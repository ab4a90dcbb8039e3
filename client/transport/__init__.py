"""Talking HTTP to RunComfy: one call per method, its answer read, its failure typed.

``api`` is the surface (``RunComfyClient``), ``responses`` reads answers and
error bodies, ``retry`` says how long to wait, ``download`` fetches result files.
"""
