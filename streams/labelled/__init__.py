"""Labelled streams: synthetic communities whose truth is known, and their offline scoring.

Shared by ``pulse evaluate``, the studies (``studies/``) and the tests.
"""
