"""Training of napari-medsynth generators (G1-G4) on IXI T2/PD pairs.

It builds on the Qt-free core in ``napari_medsynth.core`` and runs headless.
"""
