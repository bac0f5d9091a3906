"""Pictures of meshes and fields: PNG rendering, an interactive window, a browser page, plots."""

from .render import render, render_comparison

__all__ = ["render", "render_comparison"]
