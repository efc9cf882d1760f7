"""The Qt-free core shared by the napari plugin and ``src_train``.

Nothing under this package imports Qt, napari or magicgui, so training runs on a
headless server.
"""
