"""One paid job from the gate to images in hand.

``jobs`` owns the money decisions (gate, journal, slots, submit), ``journey``
follows a submitted job to its end, ``pacing`` says when to look next,
``stop`` is the user's Stop, ``updates`` is what the user is told.
"""
