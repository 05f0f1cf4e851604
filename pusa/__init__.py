"""Pusa studio: Pusa V1 vectorized-timestep video generation on Wan2.1/Wan2.2, from Python,
the command line, a web studio and an HTTP API.

The engine is ``pusa.pipeline.PusaPipeline``; requests are ``pusa.settings.GenerationSettings``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
