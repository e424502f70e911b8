"""vasa: an open, reproducible re-implementation of VASA-1 (audio-driven talking faces)."""

__version__ = "0.1.0"
