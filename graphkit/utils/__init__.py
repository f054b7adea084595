r"""Pure tensor functions shared by the layers and pipelines."""
from graphkit.utils.tensor import mask_dropout

__all__ = ['mask_dropout']
