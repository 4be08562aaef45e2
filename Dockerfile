# Liver CDS: CDS Hooks 2.0 service image.
#   docker build -t liver-cds .
#   docker run --rm -p 8000:8000 -v liver-cds-data:/var/lib/liver-cds liver-cds
# Settings come from LIVER_CDS_* environment variables (README, settings table).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The install step: the project exactly as pyproject.toml describes it (the same project
# and dependencies `make run` / `make test` install). A plain, non-editable install without
# the [test] extra: the image runs the service, it does not run the test suite.
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir . \
    && rm -rf /app/build /app/*.egg-info

# Data the service reads at run time; a wheel does not contain these directories.
COPY cards ./cards
COPY fixtures ./fixtures

# An unprivileged user owning only the data volume.
RUN groupadd --system --gid 10001 liver \
    && useradd --system --uid 10001 --gid liver --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin liver \
    && mkdir -p /var/lib/liver-cds \
    && chown liver:liver /var/lib/liver-cds

ENV LIVER_CDS_DATABASE_URL=sqlite:////var/lib/liver-cds/liver-cds.db \
    LIVER_CDS_CARDS_DIR=/app/cards \
    LIVER_CDS_FIXTURES_DIR=/app/fixtures \
    LIVER_CDS_LOG_FORMAT=json

VOLUME ["/var/lib/liver-cds"]
USER 10001:10001
EXPOSE 8000

# No curl in the slim image: the probe is a Python one-liner with urllib.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]

CMD ["liver-cds", "serve", "--host", "0.0.0.0", "--port", "8000"]
