"""Tests of the NetScaler simulator (peeringd.runtime.lab.nssim)."""
