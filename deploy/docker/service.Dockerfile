# syntax=docker/dockerfile:1.7
# One image recipe for the four services: they differ only in the workspace package installed, its console
# script and its port, so one file keeps them from drifting apart. Build from the repository root:
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=router --build-arg PORT=8083 \
#     -t mailsync-router .
# The build stage installs exactly what uv.lock pins for that one package (no dev group, no other member);
# the runtime stage gets only the resulting virtual environment and runs it as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/mailsync
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
ARG SERVICE
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${SERVICE}" \
    && uv sync --frozen --no-dev --no-editable --package "mailsync-${SERVICE}" \
    && ln -s "mailsync-${SERVICE}" /opt/mailsync/bin/mailsync-service

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG PORT
LABEL org.opencontainers.image.title="mailsync-${SERVICE}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mailsync \
    && useradd --system --uid 10001 --gid mailsync --no-create-home --shell /usr/sbin/nologin mailsync
COPY --from=build /opt/mailsync /opt/mailsync
ENV PATH=/opt/mailsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MAILSYNC_HTTP_HOST=0.0.0.0 \
    MAILSYNC_HTTP_PORT=${PORT}
USER 10001:10001
EXPOSE ${PORT}
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['MAILSYNC_HTTP_PORT'] + '/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/mailsync/bin/mailsync-service"]
