"""Tests of the NetScaler simulator (peeringd.lab.nssim)."""
