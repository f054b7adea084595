r"""graphkit: graph-learning components on PyTorch Geometric, on shared data
loaders and one training pipeline."""
__version__ = '0.1.0'

import warnings  # noqa: E402

# graphkit multiplies by sparse CSR operators throughout (HiGCN's filters,
# sheaf Laplacians); PyTorch flags their API as beta on every construction.
warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in '
                        'beta state', category=UserWarning)
warnings.filterwarnings('ignore', message='Sparse invariant checks are '
                        'implicitly disabled', category=UserWarning)

from graphkit import data, models, pipelines  # noqa: E402

__all__ = ['data', 'models', 'pipelines', '__version__']
