"""What the pack remembers about money across processes: jobs paid, images kept, spend.

``journal`` records every job, ``result_store`` keeps its images,
``fingerprint`` says which inputs are the same, ``spend`` adds up what was billed.
"""
