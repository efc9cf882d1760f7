"""The study's preprocessing (resampling to 224x224x96, one slice in three, z-scores) and the patch
grid. Imports the flat modules and ``files``."""
