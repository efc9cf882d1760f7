"""Synthesis as a user asks for it: the request's options, patch reconstruction, the staged
pipeline, comparisons, folders and the catalog of bundled generators. Imports every other room
but ``simulation`` and ``training``."""
