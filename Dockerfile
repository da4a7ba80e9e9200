# peeringd as a container: the daemon, with /metrics and /healthz on port 9101.
#
#   docker build -t peeringd .
#   docker run -d --name peeringd --stop-timeout 90 -p 9101:9101 \
#     -v /srv/peeringd:/etc/peeringd:ro -v /srv/peeringd-secrets:/run/secrets:ro \
#     peeringd --kubeconfig /run/secrets/kubeconfig
#
# Arguments after the image name are added to `peeringd run`. Without --kubeconfig
# the daemon uses $KUBECONFIG, else the pod's service account (in Kubernetes).

# Build: a venv holding peeringd and its dependencies (all of them ship wheels).
FROM python:3.11-slim AS build
RUN python -m venv /opt/peeringd/venv
COPY pyproject.toml README.md /src/
COPY daemon/ /src/daemon/
RUN /opt/peeringd/venv/bin/pip install --no-cache-dir /src

# Run: the same base, so the venv's python symlink still points at this interpreter.
FROM python:3.11-slim
# git: the daemon records the state file's commit (`git rev-parse`, read-only).
# tini as PID 1: it forwards SIGTERM to the daemon even before the daemon has
# installed its own handler (a PID 1 without one ignores SIGTERM) and reaps
# orphans. The daemon finishes the pass in flight on SIGTERM: allow 90 s
# (--stop-timeout 90, terminationGracePeriodSeconds: 90).
# Not pinned: Debian drops superseded versions from its archive, breaking old pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 peeringd \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin peeringd
COPY --from=build /opt/peeringd/venv /opt/peeringd/venv
# The mounted state directory belongs to another user: git refuses such a repository
# unless it is named in safe.directory (only this path: a repository's own config can
# run commands). GIT_OPTIONAL_LOCKS=0: `git status` must not write to the mount.
ENV PATH=/opt/peeringd/venv/bin:$PATH \
    GIT_CONFIG_COUNT=1 \
    GIT_CONFIG_KEY_0=safe.directory \
    GIT_CONFIG_VALUE_0=/etc/peeringd \
    GIT_OPTIONAL_LOCKS=0
# The state file (peering.yaml); its secret files are mounted where it names them.
VOLUME /etc/peeringd
EXPOSE 9101
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
# Python's standard library, because the slim image has no curl. The first pass
# may wait on slow SSH logins, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9101/healthz', timeout=4)"]
# The lock goes to /tmp: /run/peeringd does not exist for this user.
ENTRYPOINT ["tini", "--", "peeringd", "run", "-f", "/etc/peeringd/peering.yaml", "--metrics-address", "0.0.0.0:9101", "--lock-file", "/tmp/peeringd.lock"]
