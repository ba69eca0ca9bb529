"""3D morphable models: one internal schema, loaders for real model formats, sampling and rendering."""
