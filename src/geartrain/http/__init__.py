"""The HTTP side of the server: gearmand-compatible job submission, a JSON API, ``/metrics`` and the dashboard.

Standard library only; built by the node's composition root
(:mod:`geartrain.server.node`) when ``--http-port`` is given, and given a view of the node, not the server.
"""
