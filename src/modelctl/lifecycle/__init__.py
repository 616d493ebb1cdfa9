"""The lifecycle: bindings and the deploy/promote/rollback actions, gates, history, status."""
