"""Deploying the snapshot agent: flag parsing (``flags``), manifests (``spec``), RBAC pre-checks (``access``),
pod/Job/node classifiers (``classify``), the decisions of the wait (``scheduler``), the API calls of a run -
create, start, watch, fetch, clean up (``deployer``), the receipt check (``verify``) and one run from plan to
outcome (``run``)."""
