# syntax=docker/dockerfile:1
# Conveyor worker image: `docker build -t conveyor .` then `docker run conveyor` (runs worker.py).
# Settings come from CONVEYOR_* environment variables; provider keys (OPENAI_API_KEY…) are passed
# at run time, never baked into the image.

# Pinned by full tag so rebuilds are reproducible; bump deliberately.
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # litellm would otherwise download its price map at import; containers may have no egress.
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    CONVEYOR_DATA_DIR=/data

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code edits do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (dependencies are already there).
COPY . .
# Byte-compile now: the code is read-only to the worker, and without .pyc files the workflow
# sandbox would compile task.py from source on every task it starts or replays.
RUN pip install --no-deps . \
    && python -m compileall -q /app \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin conveyor \
    && mkdir -p /data \
    && chown conveyor:conveyor /data

# The code stays root-owned and read-only to the process; only /data is writable.
USER conveyor

# Prometheus metrics: the SDK's (CONVEYOR_METRICS_PORT) and Conveyor's (CONVEYOR_APP_METRICS_PORT).
EXPOSE 9464 9465

# Exec form: python is PID 1 and receives SIGTERM, on which worker.py stops polling and lets
# in-flight activities finish (CONVEYOR_SHUTDOWN_GRACE seconds).
CMD ["python", "worker.py"]
