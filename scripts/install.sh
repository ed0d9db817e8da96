#!/usr/bin/env bash
# One-shot set-up for a fresh Debian machine (also fast when everything is already there).
#
# Why a wheelhouse: PETSc, petsc4py and mpi4py have no usable binary wheels for Debian's MPICH,
# so they are compiled from source once (about 15 minutes on 2 cores) into a cache outside the
# repository; every later install (a fresh clone, CI) installs from that cache in seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${PDEGEN_VENV:-$ROOT/.venv}
WHEELHOUSE=${PDEGEN_WHEELHOUSE:-$HOME/.cache/pdegen/wheelhouse}
PYTHON=${PYTHON:-python3.11}
PETSC_VERSION=3.26.1
MPI4PY_VERSION=4.1.2
export PETSC_CONFIGURE_OPTIONS="--with-cuda=0 --with-hip=0 --with-x=0 --with-fc=0 --with-debugging=0 COPTFLAGS=-O2 CXXOPTFLAGS=-O2"

log() { printf '[install] %s\n' "$*"; }
start=$(date +%s)

# 1. System packages (MPICH and OpenBLAS): PETSc and mpi4py must link the same MPI. With
#    --test also what the test suite starts itself: a one-node Slurm (slurmctld, slurmd and
#    munge; tests/test_slurm.py submits the templates in scripts/slurm/ to it). Installing
#    them starts no service here (the test starts its own, on its own configuration).
packages=(libmpich-dev mpich libopenblas-dev)
[ "${1:-}" = "--test" ] && packages+=(slurm-wlm munge)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# 3. Source-built wheels, cached.
mkdir -p "$WHEELHOUSE"
have_wheel() { compgen -G "$WHEELHOUSE/$1-*.whl" >/dev/null; }
# A wheel's file name does not say how PETSc was configured: record it, and rebuild PETSc and
# petsc4py when the configuration changes (a wheelhouse from before this record is taken to
# match, as its options never changed until it existed).
options_file="$WHEELHOUSE/petsc-configure-options"
if [ -f "$options_file" ] && [ "$(cat "$options_file")" != "$PETSC_CONFIGURE_OPTIONS" ]; then
  log "PETSc's configuration changed: rebuilding petsc and petsc4py"
  rm -f "$WHEELHOUSE"/petsc-*.whl "$WHEELHOUSE"/petsc4py-*.whl
fi
printf '%s' "$PETSC_CONFIGURE_OPTIONS" > "$options_file"
tools_ready=0
ensure_build_tools() {  # only needed when something is compiled or downloaded
  [ "$tools_ready" = 1 ] || "${PIP[@]}" install -U pip wheel setuptools >/dev/null
  tools_ready=1
}
# mpi4py (one big C file, one core) does not need PETSc: it is built in the background at the
# lowest CPU priority, so it uses the core that PETSc's configure and petsc4py's single-file
# compile leave idle and yields to PETSc's parallel make (measured: see docs/install.md, cold set-up).
step() {  # step NAME COMMAND...: run, log its duration
  local name=$1 t0; shift; t0=$(date +%s)
  "$@"
  log "$name built in $(( $(date +%s) - t0 )) s"
}
mpi4py_pid=""
if ! have_wheel "mpi4py-$MPI4PY_VERSION"; then
  ensure_build_tools
  log "building mpi4py $MPI4PY_VERSION against $(command -v mpicc) in the background"
  mpi4py_log=$(mktemp)
  ( export MPICC=mpicc; step mpi4py nice -n 19 "${PIP[@]}" wheel --no-deps --no-binary mpi4py \
      -w "$WHEELHOUSE" "mpi4py==$MPI4PY_VERSION" ) >"$mpi4py_log" 2>&1 &
  mpi4py_pid=$!
fi
if ! have_wheel "petsc-$PETSC_VERSION"; then
  ensure_build_tools
  log "building petsc $PETSC_VERSION (about 6 minutes)"
  # --no-cache-dir: pip's own wheel cache keys a source build by name and version only, so a
  # petsc wheel built earlier with other configure options would be handed back unbuilt
  step petsc "${PIP[@]}" wheel --no-cache-dir --no-deps -w "$WHEELHOUSE" "petsc==$PETSC_VERSION"
fi
if ! have_wheel "petsc4py-$PETSC_VERSION"; then
  ensure_build_tools
  # petsc4py is one 35 MB generated C file, compiled on one core after PETSc: the serial tail
  # of the cold install. Python's default flags (-g -O3) spend most of that on debug info;
  # CFLAGS=-g0 (which leaves PETSc's -O2) cut its compile from 289 to 169 CPU seconds, and
  # petsc4py's call overhead measured the same (1.42-1.53 us per 5 calls, both builds).
  log "building petsc4py $PETSC_VERSION (about 3 minutes)"
  CFLAGS="-g0" step petsc4py "${PIP[@]}" wheel --no-cache-dir --no-deps --find-links "$WHEELHOUSE" \
    -w "$WHEELHOUSE" "petsc4py==$PETSC_VERSION"
fi
if [ -n "$mpi4py_pid" ]; then
  if ! wait "$mpi4py_pid"; then cat "$mpi4py_log" >&2; log "mpi4py build failed"; exit 1; fi
  cat "$mpi4py_log"; rm -f "$mpi4py_log"
fi

# 4. Everything else as binary wheels into the same cache, then install offline from it.
stamp="$VENV/.pdegen-install-stamp"
want=$(cat "$ROOT/pyproject.toml" "$0" | sha256sum | cut -d' ' -f1)
# 5. The compiled Krylov loops (solvers/csrc), linked to this environment's PETSc; cached by
#    source, header and PETSc's location, version and configuration, so this is instant once
#    built.
build_native() {
  "$VENV/bin/python" -c 'from solvers import native; native.build(); print(native.status())' \
    | sed 's/^/[install] /'
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  build_native
  log "environment up to date ($(( $(date +%s) - start )) s)"
  exit 0
fi
# The runtime and dev requirements, read from pyproject.toml (the one place they are listed).
reqs=$("$VENV/bin/python" -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))' "$ROOT/pyproject.toml")
reqfile=$(mktemp); trap 'rm -f "$reqfile"' EXIT
printf '%s\n' "$reqs" > "$reqfile"
ensure_build_tools
if ! "${PIP[@]}" install --no-index --find-links "$WHEELHOUSE" -r "$reqfile" 2>/dev/null; then
  log "caching dependency wheels in $WHEELHOUSE"
  "${PIP[@]}" wheel --find-links "$WHEELHOUSE" -w "$WHEELHOUSE" -r "$reqfile" setuptools wheel
  "${PIP[@]}" install --no-index --find-links "$WHEELHOUSE" -r "$reqfile"
fi
"${PIP[@]}" install --no-index --find-links "$WHEELHOUSE" --no-build-isolation --no-deps -e "$ROOT"
build_native
echo "$want" > "$stamp"
log "done in $(( $(date +%s) - start )) s"
