"""Synthetic example worlds with ground truth (``gaelp-bayes example-data``)."""

from gaelp_bayes.world.build import World, make_world, write_world
from gaelp_bayes.world.spec import WORLDS, Channel, Segment, WorldSpec, get_world

__all__ = [
    "WORLDS",
    "Channel",
    "Segment",
    "World",
    "WorldSpec",
    "get_world",
    "make_world",
    "write_world",
]
