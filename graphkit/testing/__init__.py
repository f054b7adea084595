r"""Dense reference implementations and tiny graphs, shipped for tests."""
from graphkit.testing.dense import (dense_adjacency, dense_flower_petal,
                                    dense_gcn_layer)
from graphkit.testing.graphs import tiny_graph, permute_graph

__all__ = ['dense_adjacency', 'dense_flower_petal', 'dense_gcn_layer', 'tiny_graph',
           'permute_graph']
