"""The web application (FastAPI + Jinja2 + HTMX; Apache ECharts served locally).

Pages and the JSON API are thin layers over :mod:`kaohe.workflow` and the
engine; access is checked on the server for every route (:mod:`kaohe.auth`).
"""
