"""Figures of merit and what they are taken over: metrics, head masks, the figures record, the
baselines and the contrast check. Imports the flat modules and ``files``."""
