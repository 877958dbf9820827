# Source me: `source scripts/env.sh` gives this shell the project's venv, ROS 2 (from the
# venv's wheels), the built messages and the Fast DDS profile for large messages.
_seg_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$_seg_root/install/setup.bash" ]; then
  echo "seg_perception is not built yet: run scripts/setup.sh" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_seg_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$_seg_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# install/setup.bash reads unset variables; do not let a caller's `set -u` trip on them.
_seg_nounset=$(set +o | grep nounset); set +u
# shellcheck disable=SC1091
source "$_seg_root/install/setup.bash"
eval "$_seg_nounset"
# The repository's sources come first, so edits take effect without a rebuild; the
# generated `seg_perception.msg` is still found in install/ (see seg_perception/__init__.py).
export PYTHONPATH="$_seg_root${PYTHONPATH:+:$PYTHONPATH}"
# Large Images/PointCloud2 over Fast DDS need a bigger shared-memory segment (DESIGN.md 5).
export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-$_seg_root/config/fastdds_large_messages.xml}"
unset _seg_root _seg_nounset
