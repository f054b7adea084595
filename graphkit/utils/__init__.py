r"""Pure tensor functions shared by the layers and pipelines."""
from graphkit.utils.spmm import csr_spmm, csr_transpose
from graphkit.utils.tensor import check_index, mask_dropout

__all__ = ['mask_dropout', 'check_index', 'csr_spmm', 'csr_transpose']
