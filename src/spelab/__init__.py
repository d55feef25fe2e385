"""spelab: attention backends x positional encodings (SPE) experiment platform."""

__version__ = "0.1.0"
