"""Deploying the snapshot agent: manifests (``spec``), flag parsing (``flags``), RBAC pre-checks (``access``),
waiting (``wait``) and the create/fetch/cleanup orchestration (``deployer``)."""
