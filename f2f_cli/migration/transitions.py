"""Every phase move, declared once: its source and target, its preconditions and its ordered steps.

``f2f migrate plan`` and ``--dry-run`` print exactly these steps and run exactly these checks;
the machine (``machine.py``) reports each step by its key as it runs it and refuses a key a
transition does not declare, so what is planned and what runs cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from f2f_cli.control.phase import Phase
from f2f_cli.control.specs import spec_of


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    text: str
    # The phase this step sets in f2f_control (None: a step that moves no phase).
    sets: Phase | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    command: str  # what the operator types after 'f2f migrate'
    # The machine's routine that carries the steps out (one per kind of move, see machine.py).
    procedure: str
    source: Phase
    # None: the phase the unfinished cut-over came from (known only from the control row).
    target: Phase | None
    checks: tuple[str, ...]  # precondition keys (migration/checks.py names them), all before any change
    steps: tuple[Step, ...]

    @property
    def holds_writes(self) -> bool:
        return any(s.key == HOLD.key for s in self.steps)

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(f"'{self.command}' from {self.source} declares no step {key!r}")

    def index(self, key: str) -> int:
        return self.steps.index(self.step(key))


def _open(target: Phase, note: str) -> Step:
    return Step("open", f"set {target} ({note}) and wait for every instance to acknowledge it", sets=target)


HOLD = Step("hold", "set cutover (writes held; the migrator renews the cut-over deadline) and wait for every "
                    "instance to acknowledge it", sets=Phase.CUTOVER)
VERIFY = Step("verify", "verify SQL against Redis (must be clean)")
REPAIR = Step("repair", "repair pass for Redis copies that failed meanwhile")
BACKFILL = Step("backfill", "backfill SQL → Redis (batched, pipelined, resumable, keeps TTLs, never older over newer)")

DUAL_CHECKS = ("lease", "sql_schema", "redis_reachable", "eviction_policy", "memory")

TRANSITIONS: tuple[Transition, ...] = (
    Transition("to dual", "copy_in", Phase.POSTGRES, Phase.DUAL, DUAL_CHECKS, (
        Step("clear-stale", "remove the session copies Redis kept from an earlier phase (not maintained in "
                            "postgres, so stale; kept with --resume)"),
        Step("dual-write", "set dual-write (writes go to SQL, then Redis) and wait for every instance to "
                           "acknowledge it", sets=Phase.DUAL_WRITE),
        Step("repair-reset", "reset the repair queue (the backfill copies everything from here)"),
        BACKFILL, REPAIR, VERIFY, _open(Phase.DUAL, "reads from Redis"),
    )),
    Transition("to dual --resume", "copy_in", Phase.DUAL_WRITE, Phase.DUAL, DUAL_CHECKS, (
        Step("resume", "take up the interrupted 'to dual' and wait for every instance to acknowledge dual-write"),
        Step("backfill", "backfill SQL → Redis from the checkpoint (sessions before it were copied already)"),
        REPAIR, VERIFY, _open(Phase.DUAL, "reads from Redis"),
    )),
    Transition("to redis", "cut_over", Phase.DUAL, Phase.REDIS,
               ("lease", "redis_reachable", "redis_trusted", "worker_alive", "verify_clean"), (
        VERIFY, HOLD,
        Step("repair", "repair pass for copies that failed just before the hold"),
        _open(Phase.REDIS, "Redis is the authority; SQL is the backup via 'f2f worker'"),
    )),
    Transition("rollback", "cut_back", Phase.REDIS, Phase.DUAL,
               ("lease", "sql_schema", "redis_reachable", "worker_alive", "backlog_drainable"), (
        HOLD,
        Step("drain", "wait until 'f2f worker' has drained the backup stream into SQL"),
        Step("reverse-sync", "reverse sync: anything newer in Redis into SQL"),
        VERIFY,
        Step("repair-reset", "reset the repair queue (Redis matches SQL)"),
        _open(Phase.DUAL, "SQL is the version authority again"),
    )),
    Transition("rollback", "drop_copy", Phase.DUAL, Phase.POSTGRES, ("lease", "sql_schema"), (
        _open(Phase.POSTGRES, "Redis stops receiving copies"),
        Step("report", "report what Redis still holds (it expires by TTL)"),
    )),
    Transition("rollback", "drop_copy", Phase.DUAL_WRITE, Phase.POSTGRES, ("lease", "sql_schema"), (
        _open(Phase.POSTGRES, "Redis stops receiving copies"),
        Step("report", "report what Redis still holds (it expires by TTL)"),
    )),
    Transition("rollback", "release", Phase.CUTOVER, None, ("lease",), (
        Step("return", "return from the unfinished cut-over to the phase it came from"),
    )),
)


def find(command: str, source: Phase) -> Transition | None:
    """The transition ``command`` runs from ``source`` ('to dual' from dual-write is the --resume one)."""
    for t in TRANSITIONS:
        if t.source is source and (t.command == command or t.command == f"{command} --resume"):
            return t
    return None


def route(source: Phase, target: Phase) -> Transition | None:
    """The one transition that goes from ``source`` to ``target`` (what ``plan`` shows)."""
    for t in TRANSITIONS:
        if t.source is source and t.target is target:
            return t
    if source is Phase.CUTOVER:
        return find("rollback", source)
    return None


def no_route(source: Phase, target: Phase) -> str:
    """Why there is no move, and what to do instead."""
    if source is target:
        return f"already in {target}: nothing to do"
    path: list[str] = []
    phase = source
    while phase is not target and len(path) < 4:
        # Walk back towards postgres (rollback) or forward (to ...) one declared step at a time.
        back = find("rollback", phase)
        forward = next((t for t in TRANSITIONS if t.source is phase and t.command.startswith("to ")), None)
        wanted_back = _rank(target) < _rank(phase)
        step = back if wanted_back else forward
        if step is None or step.target is None:
            break
        path.append(f"'f2f migrate {step.command}' ({phase} → {step.target})")
        phase = step.target
    if phase is target and path:
        return f"no direct move from {source} to {target}: run " + ", then ".join(path)
    return f"no move from {source} to {target}"


def _rank(phase: Phase) -> int:
    """Position on the road postgres → dual → redis (a cut-over sits between dual and redis)."""
    order = (Phase.POSTGRES, Phase.DUAL_WRITE, Phase.DUAL, Phase.CUTOVER, Phase.REDIS)
    return order.index(phase)


def authority_moves(t: Transition) -> bool:
    """Whether the move changes which store assigns versions (DESIGN.md: only through a cut-over)."""
    if t.target is None:
        return False
    return spec_of(t.source).authority is not spec_of(t.target).authority
