"""Serving: TF Serving exports and a local REST server (issue 5; not built yet).

Serving imports zoo; model code never imports serving.
"""
