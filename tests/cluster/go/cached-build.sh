# Sourced by the build scripts of single Go binaries (SeaweedFS, helm, the check harnesses): build
# one binary into the cache shared with the cluster binaries, at most once however many callers
# race, under a key the caller derives from its pins, so a warm run builds nothing.
#
#   cached_go_build LABEL BINARY KEY SRC_DIR PACKAGE WHAT [GO_BUILD_FLAGS...]
#
# Builds PACKAGE in the module at SRC_DIR into $cache/KEY/bin/BINARY (through a .partial directory,
# so a killed build leaves nothing that looks cached), one builder per LABEL at a time. Sets `bin`
# to the bin directory. Writes only to stderr: the caller prints its own last line.
cached_go_build() {
  local label="$1" binary="$2" key="$3" src="$4" package="$5" what="$6" start
  shift 6
  local cache="${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops}"
  bin="$cache/$key/bin"
  if [[ -x "$bin/$binary" ]]; then
    echo "$label cached in $bin" >&2
    return 0
  fi
  mkdir -p "$cache"
  # One builder at a time: a second caller waits, then finds the binary cached.
  exec 9>"$cache/.build-$label.lock"
  flock 9
  if [[ -x "$bin/$binary" ]]; then return 0; fi
  mkdir -p "$bin.partial"
  start=$(date +%s)
  echo "[build 0s] building $what" >&2
  (cd "$src" && CGO_ENABLED=0 go build "$@" -o "$bin.partial/$binary.tmp" "$package")
  mv "$bin.partial/$binary.tmp" "$bin.partial/$binary"
  rm -rf "$bin" && mv "$bin.partial" "$bin"
  echo "[build $(( $(date +%s) - start ))s] done; $(du -sh "$cache/$key" | cut -f1) in $bin" >&2
}
