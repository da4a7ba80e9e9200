"""Tests of the lab's Kubernetes API server."""
