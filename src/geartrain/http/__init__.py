"""The HTTP side of the server: gearmand-compatible job submission, a JSON API, ``/metrics`` and the dashboard.

Standard library only; started by :class:`geartrain.server.server.GearmanServer` when ``--http-port`` is given.
"""
