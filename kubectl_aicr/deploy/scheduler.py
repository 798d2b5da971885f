"""The decisions of waiting for a run's agents, on plain data: which target (a Job, or a fleet's pod for one
node) to start next (at most ``parallelism`` running), which pod belongs to which target, when a pod was bound
to a node (its node facts are due), what changed enough to report, which targets are finished and how, whether
one failure ends the whole run, and what was left when the deadline came.

No I/O and no clock: the :class:`~kubectl_aicr.deploy.deployer.Deployer` lists and watches the pods, feeds
each pod (a camelCase dict) to :meth:`Scheduler.observe` and does what the answers say; times are passed in.
Unit tests feed recorded pod states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from kubectl_aicr.deploy.classify import PodVerdict, pod_verdict
from kubectl_aicr.deploy.spec import TARGET_LABEL, Target

#: The state of a started Job whose pod was not seen yet.
NO_POD_YET = "Job started; no pod yet"
NOT_STARTED = "not started"
#: How many unfinished Jobs the timeout message names.
STUCK_SHOWN = 5
#: Failure kinds that would fail on every node, so they end a fleet run too.
FATAL_FOR_ALL = frozenset({"image"})
#: In a fleet, how often one unfinished Job is looked at beyond its pod's status (the Job's conditions, its
#: node, its pod's events: requests per Job): a healthy agent is done before its first look.
FLEET_CHECK_EVERY = 5.0


@dataclass
class TargetResult:
    """How one target's Job ended."""

    target: Target
    ok: bool
    pod: str | None
    node: str | None
    finished_at: float  # monotonic time the CLI saw the pod end
    failure: str | None = None


@dataclass(frozen=True)
class PodUpdate:
    """What one observed pod means for its (unfinished) Job; the caller acts on it in this order: hand over the
    facts (``bound_now``), then report ``new_state``, then settle the Job when ``vanished`` or the verdict says
    done or failed."""

    job_name: str
    pod: str
    verdict: PodVerdict
    bound_now: bool  # first seen on a node: the node facts are due
    new_state: str | None  # the pod's state when it changed (None: unchanged, or vanished)
    vanished: bool  # deleted before it ended: a failure (the caller tells whether its node went too)


def job_of(pod: Mapping[str, Any]) -> str | None:
    """The name of the target (the Job, or a fleet's pod) a pod belongs to, by its labels."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name") or labels.get(TARGET_LABEL)
    return str(name) if name else None


class Scheduler:
    """The state of one run's Jobs: pending (in launch order), started, bound to a node, finished."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        parallelism: int = 1,
        fail_fast: bool = True,
        job_uids: Mapping[str, str] | None = None,
    ) -> None:
        """``job_uids``: the uid each Job was created with; pods whose controller is another object of the same
        name (someone else's pod with our labels) are ignored. Without it, any pod with the Job's label counts."""
        if parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        self.targets = {t.job_name: t for t in targets}
        self.parallelism = parallelism
        self.fail_fast = fail_fast
        self.job_uids = dict(job_uids or {})
        self.pending = list(targets)
        self.started: set[str] = set()
        self.results: dict[str, TargetResult] = {}
        self.states: dict[str, str] = {}
        self.bound: dict[str, tuple[str, str]] = {}  # job name -> (pod, node) once scheduled
        self.checked: dict[str, float] = {}  # job name -> when it was last looked at beyond its pod (fleets)

    @property
    def total(self) -> int:
        return len(self.targets)

    @property
    def done(self) -> bool:
        """Every Job has finished (succeeded or failed)."""
        return len(self.results) >= self.total

    def running(self) -> int:
        return len(self.started) - len(self.results)

    def launch(self) -> list[Target]:
        """The Jobs to start now, in order, so that at most ``parallelism`` run; they count as started."""
        out: list[Target] = []
        while self.pending and self.running() < self.parallelism:
            target = self.pending.pop(0)
            self.started.add(target.job_name)
            self.states[target.job_name] = NO_POD_YET
            out.append(target)
        return out

    def check_due(self, job_name: str, now: float, every: float = FLEET_CHECK_EVERY) -> bool:
        """Whether to look at an unfinished Job beyond its pod now: every time for one node; in a fleet at most
        once per ``every`` seconds, the first time ``every`` after it was first asked about (about its start)."""
        if self.total <= 1:
            return True
        last = self.checked.setdefault(job_name, now)
        if now - last < every:
            return False
        self.checked[job_name] = now
        return True

    def pod_seen(self, job_name: str) -> bool:
        """Whether a pod of this Job has been seen (listed or watched) at all."""
        return self.states.get(job_name, NOT_STARTED) not in (NO_POD_YET, NOT_STARTED)

    def unfinished(self) -> list[str]:
        """The started Jobs that have not finished, sorted by name."""
        return sorted(self.started - set(self.results))

    def observe(self, pod: Mapping[str, Any], *, deleted: bool = False) -> PodUpdate | None:
        """Record what a pod says about its Job; None when it is none of ours, or its Job has finished."""
        job_name = job_of(pod)
        if job_name is None or job_name not in self.targets or job_name in self.results:
            return None
        meta = pod.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        # A Job's pod names its Job as controller; a fleet's pod names the run's owner Job, not as controller.
        owner_uids = {r.get("uid") for r in refs if r.get("controller") or TARGET_LABEL in (meta.get("labels") or {})}
        if self.job_uids.get(job_name) and self.job_uids[job_name] not in owner_uids:
            return None  # not our pod (someone else's pod with our labels)
        name = str(meta.get("name"))
        verdict = pod_verdict(pod)
        bound_now = bool(verdict.node) and job_name not in self.bound
        if verdict.node and bound_now:
            self.bound[job_name] = (name, verdict.node)
        if deleted and not verdict.done and not verdict.failure:
            return PodUpdate(job_name, name, verdict, bound_now, None, vanished=True)
        new_state = None
        if verdict.state != self.states.get(job_name):
            self.states[job_name] = new_state = verdict.state
        return PodUpdate(job_name, name, verdict, bound_now, new_state, vanished=False)

    def waiting_on_node(self, job_name: str) -> tuple[str, str] | None:
        """(pod, node) of an unfinished Job whose pod is bound but not started yet, else None: the pod's
        events may say why it cannot start."""
        if job_name in self.results or job_name not in self.bound:
            return None
        return self.bound[job_name] if self.states.get(job_name, "").startswith("Pending on") else None

    def aborts(self, kind: str) -> bool:
        """Whether a failure of this kind ends the whole run (one node, or an image no node can pull) instead
        of being recorded for its node."""
        return self.fail_fast or kind in FATAL_FOR_ALL

    def succeed(self, job_name: str, pod: str | None, node: str | None, *, now: float) -> TargetResult:
        result = TargetResult(self.targets[job_name], True, pod, node, now)
        self.results[job_name] = result
        return result

    def fail(self, job_name: str, text: str, pod: str | None, node: str | None, *, now: float) -> TargetResult:
        """Record a failure for its node (the caller asked :meth:`aborts` first)."""
        result = TargetResult(self.targets[job_name], False, pod, node, now, failure=text)
        self.results[job_name] = result
        return result

    def failed(self) -> int:
        return sum(1 for r in self.results.values() if not r.ok)

    def status_line(self, elapsed: float) -> str:
        """One line for a person watching a fleet run: done/running/failed/waiting counts and an ETA (from the
        pace so far; none before the first node is done)."""
        done = len(self.results)
        waiting = self.total - len(self.started)
        eta = ""
        if 0 < done < self.total:
            eta = f", ETA {_duration(elapsed / done * (self.total - done))}"
        return (
            f"nodes: {done}/{self.total} done ({self.failed()} failed), {self.running()} running, "
            f"{waiting} waiting; {_duration(elapsed)} elapsed{eta}"
        )

    def stuck(self, limit: int = STUCK_SHOWN) -> str:
        """The last state of the first ``limit`` unfinished Jobs (by name), each named by its node if pinned."""
        left = sorted((j, self.states.get(j, NOT_STARTED)) for j in self.targets if j not in self.results)
        return "; ".join(f"{self.targets[j].node or j}: {state}" for j, state in left[:limit])


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``. Pure."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
