"""The lab: a Kubernetes API server and NetScaler simulators on 127.0.0.1, and ``peeringd lab``.

For people without a cluster or an ADC, and for the tests. It stands above the
runtime: nothing in core, adapters or runtime imports it, and its libraries
(aiohttp, asyncssh, jsonschema, jsonpatch, cel-python) come with the ``lab`` extra.
"""
