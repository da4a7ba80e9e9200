"""Tests of peeringd.runtime."""
