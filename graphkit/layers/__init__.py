r"""Building blocks of graphkit's models, one file per family."""
from graphkit.layers.link_decoders import DotDecoder, HadamardMLPDecoder

__all__ = ['DotDecoder', 'HadamardMLPDecoder']
