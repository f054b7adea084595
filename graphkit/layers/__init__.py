r"""Building blocks of graphkit's models, one file per family."""
from graphkit.layers.graph_transformer import (GraphTransformerLayer,
                                               complete_edge_index)
from graphkit.layers.link_decoders import DotDecoder, HadamardMLPDecoder

__all__ = ['DotDecoder', 'HadamardMLPDecoder', 'GraphTransformerLayer',
           'complete_edge_index']
