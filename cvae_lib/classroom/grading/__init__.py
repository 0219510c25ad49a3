"""Grading a class: ``grade`` runs each submission in ``sandbox`` through ``run``, checks its
``notebooks`` against the solutions and writes the ``report``; ``python -m cvae_lib grade``.
"""
