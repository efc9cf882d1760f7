"""napari-medsynth: MRI contrast synthesis (T2 <-> PD) with a 3D conditional GAN."""

__version__ = "0.1.0"
