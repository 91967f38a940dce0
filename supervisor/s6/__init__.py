"""s6-overlay compatibility: what an unchanged s6-overlay image finds and uses: the /run layout,
the container environment, supervise directories and their FIFOs, s6-rc's plan and its run,
fix-attrs, and pys6's stand-ins for s6's programs (with-contenv, s6-svc, s6-svstat, s6-log...).
"""
