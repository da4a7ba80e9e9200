"""The embedded lab: a Kubernetes API server and NetScaler simulators on 127.0.0.1."""
