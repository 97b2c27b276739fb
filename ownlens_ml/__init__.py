"""OwnLens ML: feature-store-backed models for a media analytics platform."""

__version__ = "0.1.0"
