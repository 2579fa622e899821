"""The workflow around the engine: org units, rulebook versions, data values,
submissions, publications, appeals and payment approvals, over the store.

Pages and API routes call these functions; they never score on their own:
scoring goes through :mod:`kaohe.engine` via :mod:`kaohe.workflow.scoring`.
"""
