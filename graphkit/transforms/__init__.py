r"""Graph transforms (PyG :class:`BaseTransform` subclasses)."""
from graphkit.transforms.flower_petal import FlowerPetalLift
from graphkit.transforms.positional import (LaplacianPE, RandomWalkPE,
                                            random_sign_flip)

__all__ = ['FlowerPetalLift', 'LaplacianPE', 'RandomWalkPE',
           'random_sign_flip']
