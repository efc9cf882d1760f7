"""Files: NIfTI volumes read and written atomically, scan names and T2/PD pairs (IXI, BIDS, any
name), and results saved with their provenance. Imports only the core's flat modules."""
