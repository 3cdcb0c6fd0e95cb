# streamguard in a container: the same package and daemon as the systemd service.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY streamguard ./streamguard
RUN python -m venv /opt/streamguard/.venv \
    && /opt/streamguard/.venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
# The image version: docker build --build-arg VERSION="$(streamguard --version | cut -d" " -f2)"
ARG VERSION=dev
LABEL org.opencontainers.image.title="streamguard" \
      org.opencontainers.image.description="Streaming audio moderation daemon: live rooms in, risky-segment alerts out." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="https://example.invalid/streamguard/README.md" \
      org.opencontainers.image.source="https://example.invalid/streamguard.git"
# PyAV, faster-whisper and the speech model come as wheels: no system packages needed.
COPY --from=build /opt/streamguard/.venv /opt/streamguard/.venv
COPY config/container.toml /etc/streamguard/streamguard.toml
COPY LICENSE /usr/share/doc/streamguard/LICENSE
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/streamguard --create-home streamguard
ENV PATH=/opt/streamguard/.venv/bin:$PATH \
    STATE_DIRECTORY=/var/lib/streamguard \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/streamguard
VOLUME ["/var/lib/streamguard"]
EXPOSE 8080
# /healthz on the port the config names (api.host/api.port): a changed port needs no edit here.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["streamguard", "health", "-c", "/etc/streamguard/streamguard.toml"]
# run exits 78 on a config error: a restart policy cannot fix that (see README, Operations).
ENTRYPOINT ["streamguard"]
CMD ["run", "-c", "/etc/streamguard/streamguard.toml"]
