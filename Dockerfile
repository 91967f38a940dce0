# The pys6 pod: pyinit as /init, sshd on 2222 and the cron runner as uid 1000,
# people's tmux sessions saved at every stop. See README.md, "The pod".
ARG BASE=debian:bookworm-slim
FROM ${BASE}

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
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_* \
 && groupadd --gid 1000 claude \
 && useradd --uid 1000 --gid 1000 --home-dir /home/claude --no-create-home --shell /bin/bash claude \
 && install -d -o 1000 -g 1000 -m 0755 /home/claude

# Dependencies before the source: a code change rebuilds only the layers below.
COPY pyproject.toml /src/pyproject.toml
RUN python3 -m venv /opt/pys6-venv \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
 && /opt/pys6-venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# pys6 itself, installed from a wheel built from the context (not editable).
COPY README.md /src/README.md
COPY supervisor /src/supervisor
COPY bin /src/bin
RUN /opt/pys6-venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src \
 && rm -rf /src \
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
# pys6's departures from s6-overlay, set as this pod wants them (README: Migrating from s6-overlay):
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
