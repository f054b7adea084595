r"""Dense reference implementations and tiny graphs, shipped for tests."""
from graphkit.testing.dense import (dense_adjacency, dense_flower_petal,
                                    dense_gcn_layer, dense_sheaf_laplacian)
from graphkit.testing.graphs import tiny_graph, permute_graph

__all__ = ['dense_adjacency', 'dense_flower_petal', 'dense_gcn_layer',
           'dense_sheaf_laplacian', 'tiny_graph',
           'permute_graph']
