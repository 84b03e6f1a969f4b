#!/usr/bin/env bash
# Wheels that the GPU machine's image lacks (it has torch, numpy, scipy, matplotlib, pyyaml,
# psutil, tqdm, threadpoolctl, pytest, mpmath, einops, pyparsing, torchvision), for Python 3.12
# on x86-64, at the versions of envs/constraints.txt, into .whl/ (git ignores it): run here,
# where PyPI is reachable, then carry .whl to the machine that runs benchmarks/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# the project's run-time needs (envs/constraints.txt), the ProDy baseline and the peers of
# benchmarks/dnn_peers.py with their needs (the versions measured in benchmarks/measured/)
pins=(gemmi==0.7.5 powerlaw==2.0.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  referencing==0.37.0 rpds-py==2026.9.1 ProDy==2.6.1 biopython==1.88 pytorch-optimizer==4.1.0
  PyHessian==0.1 hessian-eigenthings==1.0.0a5 curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1
  einconv==0.1.0 unfoldNd==0.2.3 linear_operator==0.6.1 opt_einsum==3.4.0)
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
du -sh .whl
