#!/usr/bin/env bash
# The checks that need a GPU, as one prepared script for a lent GPU machine (none was lent while
# this was written: the script's CPU side is what has run). Steps:
#   here:   bash benchmarks/gpu_wheels.sh     # the wheels the machine's image lacks, into .whl/
#   there:  bash benchmarks/gpu_check.sh [tests] [protein] [peers]   # default: all three
# carrying .whl and the peer benchmark's model (MODEL below); results land in $OUT (the device
# tool's folder) or gpu_check/. Each stage has a time limit, so a hang costs minutes, not the lease:
#   tests    tests/test_device.py on cpu and cuda: products, solvers, protein eigenvalues, CLI (~1 min)
#   protein  benchmarks/protein_speed.py per structure (with the cuda backend) and on the bundled
#            entries in one process (with --eigen-backend cuda) (~3 min)
#   peers    benchmarks/dnn_peers.py --device cuda at K = 100 and 300 on 6000 images, every tool
#            on the GPU, the CPU run's float64 reference reused (~6 min)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ! python3 -c "import gemmi, powerlaw, jsonschema, prody" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || { echo "gpu_check: could not install .whl/ (run benchmarks/gpu_wheels.sh here first)"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
MODEL=${MODEL:-results/dnn/models/lenet_mnist_sgd_b128_n0_w100_d2_s0_e50.pt}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/gpu.txt"
status=0
for stage in ${*:-tests protein peers}; do
  echo "== $stage"
  case $stage in
    tests)
      timeout 240 python3 -m pytest -q -p no:cacheprovider -rs tests/test_device.py 2>&1 | tee "$out/tests.txt" ;;
    protein)
      timeout 150 python3 benchmarks/protein_speed.py --repeat 2 2>&1 | tee "$out/protein_speed_structures_gpu.txt" &&
        timeout 150 python3 benchmarks/protein_speed.py --entries src/hessian_powerlaw/data/pdb/*.pdb.gz \
          --repeat 1 2>&1 | tee "$out/protein_speed_entries_gpu.txt" ;;
    peers)
      cp benchmarks/measured/dnn_peers.reference.json "$out/dnn_peers_gpu.reference.json" &&
        timeout 420 python3 benchmarks/dnn_peers.py --device cuda --model "$MODEL" --n-eval 6000 --k 100 300 \
          --time-limit 45 --out "$out/dnn_peers_gpu.json" 2>&1 | tee "$out/dnn_peers_gpu.txt" ;;
    *)
      echo "gpu_check: unknown stage $stage (tests, protein, peers)"; false ;;
  esac || status=1
done
exit $status
