# The pys6 pod: pyinit as /init, sshd on 2222 and the cron runner as uid 1000,
# people's tmux sessions saved at every stop. See docs/pod.md.
ARG BASE=debian:bookworm-slim
FROM ${BASE} AS base

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYS6_TEMPLATES=/opt \
    PATH=/opt/pys6-venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The home stays empty in the image: a volume hides it (and podman would copy skel files
# into a new volume, which Kubernetes does not); cont-init.d seeds it from /opt.
# Debian's packages as the base release pins them: versions are not repeated here
# (hadolint DL3008), a rebuild takes the release's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3 python3-venv openssh-server openssh-client tmux mosh git ca-certificates tzdata procps \
        man-db bash-completion \
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_* \
 && groupadd --gid 1000 claude \
 && useradd --uid 1000 --gid 1000 --home-dir /home/claude --no-create-home --shell /bin/bash claude \
 && install -d -o 1000 -g 1000 -m 0755 /home/claude

# The wheel of pys6, built from the context with the locked build backend (requirements-build.lock),
# in a stage of its own: setuptools never reaches the image.
FROM base AS wheel
COPY requirements-build.lock /src/requirements-build.lock
RUN python3 -m venv /opt/build-venv \
 && /opt/build-venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
        --only-binary=:all: -r /src/requirements-build.lock
COPY pyproject.toml README.md /src/
COPY supervisor /src/supervisor
COPY bin /src/bin
RUN /opt/build-venv/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-build-isolation --no-deps \
        --wheel-dir /wheel /src

FROM base
# Dependencies before the source: a code change rebuilds only the layers below. They come from
# requirements.lock (scripts/lock-deps refreshes it), every file checked against its sha256:
# two builds a month apart run the same code in PID 1.
COPY requirements.lock /src/requirements.lock
RUN python3 -m venv /opt/pys6-venv \
 && /opt/pys6-venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
        --only-binary=:all: -r /src/requirements.lock \
 && rm -rf /src

# pys6 itself, from the wheel (not editable); pip check: the lock held everything the code needs.
# Its man pages are made here from the installed commands' --help, so they cannot go stale, and
# bash completes pysvstat's and pysvc's options and service names (bash.bashrc loads
# bash-completion for SSH sessions, login or not, and tmux's windows).
COPY --from=wheel /wheel /tmp/wheel
COPY pyproject.toml /tmp/pys6/pyproject.toml
COPY scripts/make-man /tmp/pys6/make-man
COPY completions/bash.bashrc /tmp/pys6/bash.bashrc
COPY completions/pys6.bash /usr/share/bash-completion/completions/pysvstat
RUN /opt/pys6-venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /tmp/wheel/pys6-*.whl \
 && /opt/pys6-venv/bin/pip check \
 && /opt/pys6-venv/bin/python /tmp/pys6/make-man --pyproject /tmp/pys6/pyproject.toml /usr/local/share/man/man1 \
 && ln -s pysvstat /usr/share/bash-completion/completions/pysvc \
 && cat /tmp/pys6/bash.bashrc >> /etc/bash.bashrc \
 && rm -rf /tmp/wheel /tmp/pys6 \
 && ln -s /opt/pys6-venv/bin/pyinit /init \
 && for tool in pysvstat pysvc pycrond pys6-notify-listening pys6-tmux-save pys6-tmux-restore; do \
        ln -s "/opt/pys6-venv/bin/$tool" "/usr/local/bin/$tool"; \
    done \
 && install -d -o 1000 -g 1000 -m 0700 /run/pys6

COPY cont-init.d/ /etc/cont-init.d/
COPY services.d/ /etc/services.d/
COPY cont-finish.d/ /etc/cont-finish.d/
COPY templates/ /opt/

USER 1000:1000
WORKDIR /home/claude
ENV HOME=/home/claude
# pys6's departures from s6-overlay, set as this pod wants them (README.md: Migrating from s6-overlay):
# the [name] prefix on the merged log, signals to a service's whole process group, the crash bail,
# and cont-finish (the site's shutdown hook, the tmux save) first, while sshd and cron still run.
ENV PYS6_LOG_PREFIX=1
ENV PYS6_GROUP_SIGNALS=1
ENV PYS6_CRASH_BAIL=1
ENV PYS6_FINISH_AFTER_SERVICES=0
# The pod's scripts are plain #!/bin/sh reading HOME, CRONTAB, SSHD_PORT...: s6-overlay v3 (and
# pyinit) give them only PATH unless S6_KEEP_ENV is 1.
ENV S6_KEEP_ENV=1
EXPOSE 2222
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["pysvstat", "--check"]
ENTRYPOINT ["/init"]
