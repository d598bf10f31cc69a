# release-runner as a standalone image: the runner plus this repository's sql/.
# Fly runs `release_command` in the app's image, so apps usually copy the two stages below
# into their own Dockerfile instead (see the README's Fly.io guide).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY release_runner ./release_runner
RUN python -m venv /opt/release-runner \
 && /opt/release-runner/bin/pip install --no-cache-dir .

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/release-runner/bin:$PATH \
    RELEASE_RUNNER_MIGRATIONS=/app/sql
COPY --from=build /opt/release-runner /opt/release-runner
WORKDIR /app
COPY sql ./sql
RUN useradd --system --uid 10001 --no-create-home runner
USER 10001
# No ENTRYPOINT: Fly's release_command replaces CMD, and must read "release-runner migrate".
CMD ["release-runner", "migrate"]
