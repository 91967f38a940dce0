"""Prometheus: the text format, pyinit's page rendered from plain records, the services' drop-in
files, the process figures, and the bounded HTTP endpoint pyinit and pycrond share.
"""
