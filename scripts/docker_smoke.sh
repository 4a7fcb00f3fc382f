#!/usr/bin/env bash
# Build the mtst image, run `mtst demo` in it, then `mtst serve` and one request; print the image size.
# Not part of CI: it takes minutes and a few GB. Docker when its daemon answers, else podman (the route for a
# machine without a Docker daemon: see "Docker" in the README).
#
#   scripts/docker_smoke.sh [IMAGE]          # default image name: mtst:smoke
#
# Environment:
#   ENGINE=docker|podman   force one (default: docker if `docker info` works, else podman)
#   BASE=IMAGE             the Dockerfile's base (default: python:3.11-slim with docker; with podman the same if
#                          it can be pulled, else a Debian bookworm base made with debootstrap and `podman import`)
#   TORCH_WHEEL=FILE       a torch 2.13.0 CPU wheel to install instead of PyTorch's index (default: one found in
#                          /opt/wheels, else none)
#   PORT=18080             where the smoke `mtst serve` listens (127.0.0.1, host network)
set -euo pipefail

image=${1:-mtst:smoke}
root=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-18080}
name="mtst-smoke-$$"
say() { printf '\n== %s\n' "$*" >&2; }

if [[ -z "${ENGINE:-}" ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null; then ENGINE=podman
  else echo "error: neither a Docker daemon nor podman here (apt-get install podman)" >&2; exit 1; fi
fi

engine=("$ENGINE")
build_opts=()
run_opts=()
if [[ "$ENGINE" == podman ]]; then
  # vfs works on any file system (no overlay or fuse needed); runc where crun is missing or refused
  engine+=(--storage-driver vfs)
  command -v runc >/dev/null && engine+=(--runtime runc)
  # podman's defaults (nofile 1048576, nproc 4194304) are more than a container host may grant (runc: "error
  # setting rlimit type 6/7: operation not permitted"): the host's open-file limit, and 4096 processes
  limits=(--ulimit "nofile=$(ulimit -n):$(ulimit -n)" --ulimit "nproc=${NPROC:-4096}:${NPROC:-4096}")
  build_opts+=("${limits[@]}" --network host)
  run_opts+=("${limits[@]}")
fi

base=${BASE:-}
if [[ -z "$base" && "$ENGINE" == podman ]]; then
  if "${engine[@]}" image exists mtst-base:bookworm; then
    base=mtst-base:bookworm
  elif "${engine[@]}" pull -q docker.io/library/python:3.11-slim >/dev/null 2>&1; then
    base=docker.io/library/python:3.11-slim
  else
    say "no registry image: a Debian bookworm base from debootstrap (python3.11 as python and pip)"
    command -v debootstrap >/dev/null || { echo "error: apt-get install debootstrap" >&2; exit 1; }
    rootfs=$(mktemp -d)
    chmod 755 "$rootfs"  # it becomes the image's /: mktemp's 0700 would lock user 1000 out of everything
    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$rootfs" \
      http://deb.debian.org/debian >/dev/null
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED  # pip installs into the image's own Python, as in python:slim
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # the certificates this host trusts (a TLS-inspecting proxy's own CA among them, where there is one)
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    # an imported image has no config: give it the PATH python:slim has, or `mtst` is not found
    tar -C "$rootfs" -c . | "${engine[@]}" import \
      --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" - mtst-base:bookworm >/dev/null
    rm -rf "$rootfs"
    base=mtst-base:bookworm
  fi
fi

# The build context: only what the Dockerfile copies, plus wheels/ with a local torch wheel when there is one
context=$(mktemp -d)
cleanup() {
  "${engine[@]}" rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$context"
}
trap cleanup EXIT
cp -r "$root/Dockerfile" "$root/pyproject.toml" "$root/README.md" "$root/src" "$context/"
find "$context/src" -name __pycache__ -prune -exec rm -rf {} +
wheel=${TORCH_WHEEL:-$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)}
if [[ -n "$wheel" ]]; then
  mkdir "$context/wheels"
  cp "$wheel" "$context/wheels/"
fi

say "build $image with $ENGINE (base: ${base:-python:3.11-slim}; torch: ${wheel:-the PyTorch CPU index})"
start=$(date +%s)
"${engine[@]}" build "${build_opts[@]}" ${base:+--build-arg "BASE=$base"} -t "$image" "$context"
echo "built in $(( $(date +%s) - start )) s; size: $("${engine[@]}" image inspect --format '{{.Size}}' "$image" \
  | awk '{printf "%.2f GB", $1 / 1e9}')"

say "mtst --version and mtst demo"
"${engine[@]}" run --rm "${run_opts[@]}" "$image" --version
"${engine[@]}" run --rm "${run_opts[@]}" "$image" demo

say "mtst serve on 127.0.0.1:$port and one request"
"${engine[@]}" run -d --name "$name" --network host "${run_opts[@]}" "$image" \
  serve --host 127.0.0.1 --port "$port" >/dev/null
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/health"
echo
reply=$(curl -fsS "http://127.0.0.1:$port/v1/embeddings" -H 'Content-Type: application/json' \
  -d '{"input": ["A man is playing a guitar.", "Someone plays music."], "model": "mtst"}')
python3 - "$reply" <<'EOF'
import json, sys
reply = json.loads(sys.argv[1])
vectors = [d["embedding"] for d in reply["data"]]
assert len(vectors) == 2 and len(vectors[0]) == 384, reply
print(f"/v1/embeddings: {len(vectors)} vectors of {len(vectors[0])} values")
EOF
"${engine[@]}" logs "$name" 2>&1 | tail -3
say "smoke test passed"
