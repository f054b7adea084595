r"""Graph transforms (PyG :class:`BaseTransform` subclasses)."""
from graphkit.transforms.flower_petal import FlowerPetalLift

__all__ = ['FlowerPetalLift']
