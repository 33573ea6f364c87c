# syntax=docker/dockerfile:1
# The autoembed worker image (full: the `local` model embedder with torch + ONNX Runtime).
# `docker run IMAGE` runs `autoembed worker`; `docker run IMAGE migrate` migrates. The image holds
# an installed wheel, not the source tree: the package carries its SQL.

# 1. The wheel, built from the source.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker/ ./worker/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# 2. The runtime: CPU-only torch first (from the PyTorch CPU index, for torch only, so no CUDA
# wheels are pulled), then the wheel with the `local` extra, constrained to that torch.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUTOEMBED_HOME=/home/autoembed/.autoembed

# Non-root user. Its ~/.cache (model files, exported ONNX models) is created now so that a named
# volume mounted there starts out owned by this user.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin autoembed \
    && mkdir -p /home/autoembed/.cache /home/autoembed/.autoembed \
    && chown -R autoembed:autoembed /home/autoembed

RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY --from=wheel /dist/ /tmp/dist/
RUN echo "torch==2.13.0" > /tmp/torch-constraint.txt \
    && pip install --constraint /tmp/torch-constraint.txt "$(ls /tmp/dist/autoembed-*.whl)[local]" \
    && rm -rf /tmp/dist /tmp/torch-constraint.txt \
    && autoembed --version

USER autoembed

EXPOSE 9108
ENTRYPOINT ["autoembed"]
CMD ["worker"]
