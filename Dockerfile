# tcledger HTTP API. Configuration comes from TCLEDGER_* environment variables;
# see docker-compose.yml for a PostgreSQL-backed setup with the KEK as a secret.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged runtime user. The UID defaults to 1000 so that a compose secret bind-mounted
# from a mode-0600 key file owned by a typical host user stays readable; override with
# --build-arg APP_UID=... when the key file's owner differs.
ARG APP_UID=1000
RUN useradd --create-home --uid "${APP_UID}" --user-group --shell /usr/sbin/nologin tcledger

# Build from a throwaway source tree: only what the package needs ([tool.setuptools] in
# pyproject.toml), installed non-editable into site-packages, then removed.
WORKDIR /src
COPY pyproject.toml ./
COPY domain ./domain
COPY projections ./projections
COPY api ./api
COPY audit ./audit
COPY infra ./infra
RUN pip install . && rm -rf /src

# Writable local-files directory (SQLite file and development keys when no database URL is set).
WORKDIR /app
RUN mkdir -p /app/var && chown tcledger:tcledger /app/var
ENV TCLEDGER_VAR_DIR=/app/var

USER tcledger

EXPOSE 8000
CMD ["tcledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
