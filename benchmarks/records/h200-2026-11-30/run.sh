#!/bin/bash
# The script of the second (successful) H200 run, as run from the repository root there.
# Preparation on the CPU machine (the GPU machine has no network; its image has torch 2.11,
# numpy, pandas, scipy, matplotlib, seaborn and pytest for Python 3.12):
#   mkdir -p .whl .gpudata  (both listed in .git/info/exclude, carried with the run)
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 (and the other manylinux tags) -d .whl <each package
#       pip freeze lists here that the image lacks: snakemake and its plugins, papermill,
#       jupytext, nbconvert, ipykernel and their dependencies; pulp, jedi and debugpy left
#       out to stay under the 64 MiB limit: --scheduler greedy needs no pulp>
#   cp -r ../shared/data/mnist/raw .gpudata/mnist; cp -r ../shared/data/fashion-mnist/raw .gpudata/fashion-mnist
export PYTHONUNBUFFERED=1
T0=$(date +%s)
el() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1 || { cat $OUT/pip.log; exit 1; }
export PYTHONPATH=$PWD/src:/tmp/site JUPYTER_PATH=/tmp/site/share/jupyter
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/bin/python && chmod +x /tmp/bin/python
export PATH=/tmp/bin:/tmp/site/bin:$PATH
export LOSSGEOM_MNIST_MIRROR=$PWD/.gpudata/mnist LOSSGEOM_FASHION_MNIST_MIRROR=$PWD/.gpudata/fashion-mnist
el installed
{ nvidia-smi -L; nproc; python -c 'import torch,numpy,pandas,scipy,snakemake,papermill,matplotlib,seaborn;print("torch",torch.__version__,"cuda",torch.version.cuda,"numpy",numpy.__version__,"pandas",pandas.__version__,"scipy",scipy.__version__,"snakemake",snakemake.__version__,"mpl",matplotlib.__version__,"seaborn",seaborn.__version__, torch.cuda.get_device_name())'; } 2>&1 | tee $OUT/env.txt
el "pytest cuda"
timeout 60 python -m pytest -p no:cacheprovider -o addopts="" -ra -v tests/test_cuda.py 2>&1 | tee $OUT/pytest_cuda.log | tail -15
el "snakemake all"
REM=$(( 440 - ($(date +%s) - T0) ))
echo "snakemake budget ${REM}s"
timeout $REM python -m snakemake all --config device=cuda --cores 16 --resources gpu=12 --scheduler greedy > $OUT/snake_all.log 2>&1
echo "snakemake rc=$?"; tail -5 $OUT/snake_all.log
el "pack"
tar czf $OUT/results.tgz --exclude='*.pt' --exclude='results/checkpoints' --exclude='*.html' --exclude='*.pdf' --exclude='*.ipynb' results logs .snakemake/log 2>/dev/null
ls -la $OUT; el done
