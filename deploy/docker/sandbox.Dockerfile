# syntax=docker/dockerfile:1.7
# The provider sandboxes for the compose stack (never for production): SANDBOX=gmail or SANDBOX=graph.
#   docker build -f deploy/docker/sandbox.Dockerfile --build-arg SANDBOX=gmail -t mailsync-gmail-sandbox .
# Same locked, single-package install as the services; the sandbox's options go in the container command.

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
ARG SANDBOX
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${SANDBOX}" \
    && uv sync --frozen --no-dev --no-editable --package "mailsync-${SANDBOX}-sandbox" \
    && ln -s "mailsync-${SANDBOX}-sandbox" /opt/mailsync/bin/mailsync-sandbox

FROM ${PYTHON_IMAGE} AS runtime
ARG SANDBOX
LABEL org.opencontainers.image.title="mailsync-${SANDBOX}-sandbox" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mailsync \
    && useradd --system --uid 10001 --gid mailsync --create-home --shell /usr/sbin/nologin mailsync \
    && mkdir /home/mailsync/state && chown mailsync:mailsync /home/mailsync/state
COPY --from=build /opt/mailsync /opt/mailsync
ENV PATH=/opt/mailsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/mailsync
ENTRYPOINT ["/opt/mailsync/bin/mailsync-sandbox"]
