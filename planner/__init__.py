"""mtl-planner: decide which tasks to learn together, how to group them, and where to buy labels."""
__version__ = "0.1.0"
