"""Tests of peeringd.core."""
