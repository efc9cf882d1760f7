"""The networks and their files: generator and discriminator, the transform-domain engine, one-pass
inference, devices, checkpoints, exported generators. Imports the flat modules, ``files`` and
``preprocessing`` (a checkpoint records its preprocessing)."""
