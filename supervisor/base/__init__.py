"""Leaves: small helpers that import nothing of pys6's (signal names, the JSON wire codec, s6's
getopt, where the runtime directory is, reading files safely, listen addresses, links, inotify,
accept). Those the clients use are standard library only.
"""
