# syntax=docker/dockerfile:1
# The autoembed worker image. `docker run IMAGE` runs `autoembed worker`; `docker run IMAGE migrate`
# applies db/migrations. The source keeps the repository's layout under /app (worker/, db/) and is
# installed in editable mode, so settings.REPO_ROOT (parents[2] of worker/autoembed/settings.py) is
# /app and REPO_ROOT/db/migrations is /app/db/migrations; AUTOEMBED_MIGRATIONS_DIR says the same.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUTOEMBED_MIGRATIONS_DIR=/app/db/migrations \
    AUTOEMBED_HOME=/home/autoembed/.autoembed

# Non-root user. Its ~/.cache (model files, exported ONNX models) is created now so that a named
# volume mounted there starts out owned by this user.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin autoembed \
    && mkdir -p /home/autoembed/.cache /home/autoembed/.autoembed \
    && chown -R autoembed:autoembed /home/autoembed

WORKDIR /app

# CPU-only torch first, from the PyTorch CPU index (for torch only), so no CUDA wheels are pulled.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# Dependencies in their own layer: install the project with the `local` extra against a stub
# package, so that editing worker/ does not reinstall sentence-transformers and the rest. The
# constraint keeps pip from swapping the CPU torch above for another build.
COPY pyproject.toml README.md ./
RUN mkdir -p worker/autoembed \
    && touch worker/autoembed/__init__.py \
    && echo "torch==2.13.0" > /tmp/torch-constraint.txt \
    && pip install --constraint /tmp/torch-constraint.txt --editable ".[local]" \
    && rm -rf worker /tmp/torch-constraint.txt

# The source, in the repository's layout; the editable install above points at /app/worker.
COPY worker/ ./worker/
COPY db/ ./db/
RUN pip install --no-deps --editable . \
    && test -d /app/db/migrations \
    && autoembed --help > /dev/null

USER autoembed

EXPOSE 9108
ENTRYPOINT ["autoembed"]
CMD ["worker"]
