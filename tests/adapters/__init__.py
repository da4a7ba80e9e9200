"""Tests of peeringd.adapters."""
