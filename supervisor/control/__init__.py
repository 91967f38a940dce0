"""The control socket and its clients: the wire protocol, the verbs (handlers), the server with its
peer checks and bounds, and the client side, pysvstat and pysvc (standard library only: a client
pays for every module it loads).
"""
