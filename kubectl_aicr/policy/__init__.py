"""Compliance policies for ``kubectl aicr check``: the model and loader (:mod:`.model`), version ranges
(:mod:`.versions`), the evaluation (:mod:`.engine`) and ``policy init`` (:mod:`.init`).

A policy (YAML or JSON)::

    apiVersion: aicr.nvidia.com/v1alpha1
    kind: Policy
    metadata: {name: h100-training}
    nodes: {labels: {nvidia.com/gpu.present: "true"}}    # optional: the nodes every rule applies to
    rules:
    - id: gpu-driver                                     # unique; waivers name it
      type: GPU                                          # type / subtype / key: fnmatch globs
      subtype: smi
      key: driver
      severity: error                                    # error (default) | warning | info
      nodes: {labels: {pool: training}}                  # optional, per rule
      expect: {version: ">= 570.86, < 580"}              # equals, one-of, version, range {min, max}, regex,
                                                         # present, absent, same-on-every-node, values
    waivers:
    - rule: gpu-driver                                   # a rule id, or a glob of ids ('*')
      nodes: [gpu-node-07]                               # optional globs; keys: [TYPE/SUBTYPE/KEY globs]
      reason: canary for 575
      owner: gpu-platform@example.com
      expires: 2026-12-31

The JSON Schema of this format ships next to this file (``policy.schema.json``).
"""

from __future__ import annotations

from importlib import resources


def schema_text() -> str:
    """The policy JSON Schema exactly as shipped."""
    return resources.files("kubectl_aicr.policy").joinpath("policy.schema.json").read_text(encoding="utf-8")
