"""Compatibility layers for code written against other Gearman libraries.

``from geartrain.compat import gearman`` gives python-gearman 2.x's API (``GearmanClient``, ``GearmanWorker``,
``GearmanAdminClient``, its constants and exceptions) on top of geartrain's client, worker and admin libraries.
"""
