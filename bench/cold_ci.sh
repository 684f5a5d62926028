#!/usr/bin/env bash
# The cold `.ci/run` as a fresh machine runs it: a clean clone of HEAD with an empty HOME, so Go's
# module and build caches, pip's cache and ~/.cache/modelops all start empty (Debian packages and
# the machine's Go/Python stay as installed). Logs the load average every minute beside the run.
# Measure on a quiet machine: each build is CPU-bound on 2 cores, so other work inflates it.
#
#     bash bench/cold_ci.sh [WORKDIR]      # default /tmp/modelops-cold; writes bench/results/cold-ci-<date>.txt
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/modelops-cold}"
rm -rf "$work" && mkdir -p "$work/home"
git clone -q "$repo" "$work/repo"
# Machine configuration, not caches: Go's env file (GOFLAGS, GOTOOLCHAIN) and git's identity.
[[ -d "$HOME/.config/go" ]] && mkdir -p "$work/home/.config" && cp -a "$HOME/.config/go" "$work/home/.config/"
[[ -f "$HOME/.gitconfig" ]] && cp "$HOME/.gitconfig" "$work/home/"
[[ -d "$HOME/.pyenv" ]] && ln -s "$HOME/.pyenv" "$work/home/.pyenv" && export PYENV_ROOT="$HOME/.pyenv"
out="$repo/bench/results/cold-ci-$(date -u +%F).txt"
log="$work/run.log"
( while sleep 60; do echo "$(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; done ) >"$work/load.log" &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT
start=$(date +%s)
rc=0
HOME="$work/home" bash "$work/repo/.ci/run" >"$log" 2>&1 || rc=$?
secs=$(( $(date +%s) - start ))
{
  echo "cold .ci/run of $(git -C "$repo" rev-parse --short HEAD): exit $rc after ${secs}s ($(( secs / 60 )) min)"
  echo "build steps (seconds from each step's start):"
  grep -E '^\[build' "$log" || true
  echo "pytest:"
  grep -E '^[0-9]+ (passed|failed)|passed|failed' "$log" | tail -2 || true
  echo "load average, one line a minute:"
  cat "$work/load.log"
} | tee "$out"
exit "$rc"
