r"""graphkit: graph-learning components on PyTorch Geometric, on shared data
loaders and one training pipeline."""
__version__ = '0.1.0'

from graphkit import data, models, pipelines  # noqa: E402

__all__ = ['data', 'models', 'pipelines', '__version__']
