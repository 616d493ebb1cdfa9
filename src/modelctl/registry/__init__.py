"""The registry's files: names and refs, strict YAML, manifests and schemas, validation and
policy, snapshots of a registry at a commit, and every write (`commits`)."""
