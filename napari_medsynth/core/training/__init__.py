"""The training protocol the trainer shares with its callers: the config, the training process
(started by module name) and its events. Imports the flat modules and ``files``."""
