#!/usr/bin/env bash
# Checks on a machine with a real NVIDIA GPU (the device tool lends one to some tasks; not part of CI,
# which has no GPU). The machine has no network: the wheels travel with the checkout in .cache/device/.
#   here:  pip download --no-deps -d .cache/device ansible-core==2.19.14 resolvelib==1.2.1
#          pip download --no-deps --only-binary=:all: --python-version 3.12 \
#              --platform manylinux_2_28_x86_64 -d .cache/device ctranslate2==4.8.5
#   there: bash tests/gpu_machine/gpu-check.sh     (OUT=dir for the logs; default /tmp/out)
# Prints nvidia-smi, the collection's nvidia_gpu_info / iommu_info / gpu_isolation on the real /sys,
# what the pinned CTranslate2 sees of CUDA, and writes the sysfs listing that
# tests/unit/fixtures/gpu-machine/h100-sysfs-pci.txt was made from.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${GPU_CHECK_PYTHON:-python3}   # on the lent machine: /opt/torch/.venv/bin/python3 (3.12)
REPO=$PWD
$PY -m pip install -q --no-deps --no-index --target /tmp/pylib .cache/device/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/pylib
mkdir -p /tmp/ac/ansible_collections/homelab && ln -sfn "$REPO" /tmp/ac/ansible_collections/homelab/gpu_passthrough
export ANSIBLE_COLLECTIONS_PATH=/tmp/ac ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
ANS="$PY /tmp/pylib/bin/ansible localhost -c local -e ansible_python_interpreter=$PY"
{
echo "== nvidia-smi"; nvidia-smi --query-gpu=name,pci.bus_id,compute_cap,driver_version,memory.total --format=csv
echo "== nvidia_gpu_info"; $ANS -m homelab.gpu_passthrough.nvidia_gpu_info
echo "== iommu_info"; $ANS -m homelab.gpu_passthrough.iommu_info
echo "== gpu_isolation"; $ANS -m homelab.gpu_passthrough.gpu_isolation
echo "== ctranslate2 (pinned 4.8.5) on this host"
$PY - <<'PYEOF'
import ctypes, ctranslate2
print("ctranslate2", ctranslate2.__version__, "cuda devices:", ctranslate2.get_cuda_device_count())
try:
    print("cuda compute types:", sorted(ctranslate2.get_supported_compute_types("cuda")))
except Exception as exc:
    print("cuda compute types: error", exc)
for lib in ("libcublas.so.12", "libcublasLt.so.12", "libcudnn.so.9", "libcublas.so.13"):
    try:
        ctypes.CDLL(lib); print(lib, "loads")
    except OSError as exc:
        print(lib, "missing:", exc)
PYEOF
} 2>&1 | tee "$OUT/gpu-check.log"
# the real sysfs of every PCI function of this machine, as the collection's reader sees it
for d in /sys/bus/pci/devices/*; do
  printf '%s' "$(basename "$d")"
  for a in vendor device class subsystem_vendor subsystem_device revision boot_vga; do
    printf ' %s=%s' "$a" "$(cat "$d/$a" 2>/dev/null || echo -)"
  done
  printf ' driver=%s iommu_group=%s\n' "$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)" \
    "$(basename "$(readlink "$d/iommu_group" 2>/dev/null)" 2>/dev/null)"
done | tee "$OUT/sysfs-pci.txt"
find /sys/kernel/iommu_groups -mindepth 1 -maxdepth 1 | wc -l > "$OUT/iommu-groups-count.txt"
cat /proc/cmdline > "$OUT/cmdline.txt"
