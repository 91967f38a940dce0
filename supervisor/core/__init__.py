"""The supervisor proper: what a service is (its directory and model), the pure restart and
crash-loop policy, the settings, one service's runner (where a service's start and death are
handled), forensics and the counts the metrics read. No sockets, no s6 paths, no Prometheus.
"""
