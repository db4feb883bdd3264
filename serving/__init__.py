"""Serving: TF Serving exports and a local REST server.

Serving imports zoo; model code never imports serving.
"""
