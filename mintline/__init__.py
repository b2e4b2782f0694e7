"""mintline: the `mintline` command and the pipeline that chains the stages."""

__version__ = "0.1.0"
