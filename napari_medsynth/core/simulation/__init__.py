"""Sample data: the phantom T2/PD pair and the degradations of real acquisitions. Imports the flat
modules and ``files``."""
