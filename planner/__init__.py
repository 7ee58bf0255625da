"""mtl-planner: decide which tasks to learn together, how to group them, and where to buy labels."""
import os as _os

# The linear algebra here is small (least squares on a few hundred subsets, small LPs), where BLAS
# threads gain nothing, and threads that spin-wait for each other on a busy small machine cost 5-10x
# (seen: the demo took 19-49 s instead of 5 s on 2 shared cores). So one BLAS/OpenMP thread unless
# the environment says otherwise; this takes effect only where numpy was not imported before
# planner. Training threads are set separately (``--threads``; torch.set_num_threads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
