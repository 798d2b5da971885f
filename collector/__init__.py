"""Host-side collection shared by the CLI (``snapshot --local``) and the agent container image.

This package knows hosts (files under /proc, /sys, /etc, commands such as ``nvidia-smi``) and reads the
Kubernetes API when it runs inside a cluster. It never deploys anything, and imports neither ``kubectl_aicr`` nor
click.

Where things are:

``model``            the wire format: kinds, statuses, ``Subtype``/``Measurement``, ``reading``/``missing``.
``sources``          the registry of host sources: one row per source (measurement, subtypes, reader, placeholder).
``host``             runs every source concurrently under one deadline and builds the host measurements.
``snapshot``         the whole Snapshot: the host measurements plus ``K8s`` (``k8s``, through ``kubeapi``).
``gpu_smi``, ``gpu_host``, ``gpu_consistency``, ``os_info``, ``kernel_config``, ``systemd``, ``net``,
``affinity``, ``runtime``   the readers, one module per group of facts (each docstring lists its keys).
``runner``           running a host command: argument lists only, one timeout, typed failures.

Adding a source
---------------

1. Write the reader, in the module of its facts or a new one: a function of what it needs (a root such as
   ``sys_root``, the command runner and a timeout) returning :func:`collector.model.reading` (or several),
   with :func:`collector.model.missing` and a reason when the host lacks it (``unavailable``) or it failed
   (``error``). It takes only allow-listed facts and no secrets (:func:`collector.os_info.secret_value`);
   list its keys in the module docstring.
2. Add one :class:`collector.sources.Source` row to :data:`collector.sources.SOURCES`, where its subtypes are to
   be listed: the measurement type, the subtype names it always yields (its placeholders), ``read`` (a lambda
   that picks the options it needs from :class:`~collector.sources.HostOptions`) and, when the placeholders'
   ``context.source`` should not be the subtype's name, ``placeholder_source``. That is all :mod:`collector.host`
   and :mod:`collector.snapshot` need: the row runs in its own thread, under the deadline, and a row that raises
   or hangs becomes its placeholders (``status: error`` and the reason). A subtype computed from the others of a
   measurement (as ``GPU/consistency``) is a :class:`~collector.sources.Summary` row in ``SUMMARIES``.
3. A new measurement type is only a new ``measurement`` string. The written snapshot orders types by
   :data:`collector.model.TYPE_ORDER`, then the others alphabetically (``Network``, ``Runtime``); adding it there
   moves it in every snapshot. Name it in the schema's list of known types
   (``kubectl_aicr/schema/snapshot.schema.json``, ``measurements[].type``).
4. A new option (say, the path of another command): a field of ``HostOptions`` and a keyword of
   :func:`collector.host.collect_host`.
5. Keys that change between two runs on an unchanged node (counters, timestamps) or that name this node or GPU
   (serials, MACs, GUIDs): a rule, with its reason, in the one key registry that ``diff`` and the collector use
   (:mod:`collector.keys`).
6. A host path the agent pod does not mount yet: a read-only, type-less ``hostPath`` in the agent Job
   (``kubectl_aicr/deploy/spec.py``), with a comment naming the subtype; without it the agent reports the source
   as unavailable.
7. Tests: the reader on a fixture tree (``tests/fixtures/host/``); ``tests/unit/test_collector_sources.py`` walks
   every row with no change (its subtypes appear in the snapshot in registry order; raising or hanging gives the
   placeholders).
"""
