"""The retry core (fauna._core) driven by a script instead of a network: where each attempt
goes, which session it carries, when a sequence is used up, and how a call ends."""
from __future__ import annotations

import random
import time
from typing import Callable, Optional, Union

import pytest

import fauna
from fauna import _core, errors, wire
from fauna.wire import Endpoint, Kind

A, B, C = Endpoint("a", 1), Endpoint("b", 2), Endpoint("c", 3)
Answer = Union[tuple[int, bytes], BaseException]


def core(**config: object) -> _core.Core:
    cfg = fauna.ClientConfig(**{"timeout": 2.0, "backoff_initial": 0.001, "backoff_max": 0.002, **config})  # type: ignore[arg-type]
    return _core.Core([A, B, C], cfg, random.Random(7))


def run(op: _core.Op, script: Callable[[_core.Send], Answer]) -> tuple[object, list[_core.Send], int]:
    """Drives `op`: each Send is answered by `script`; returns (result, sends, sleeps)."""
    sends: list[_core.Send] = []
    sleeps = 0
    action = next(op)
    try:
        while True:
            if isinstance(action, _core.Send):
                sends.append(action)
                action = op.send(script(action))
            else:
                sleeps += 1
                action = op.send(None)
    except StopIteration as stop:
        return stop.value, sends, sleeps


def ok_write(revision: int = 10, replay: bool = False) -> tuple[int, bytes]:
    return Kind.WRITE_RESPONSE, wire.ApplyResult(revision, replay, 0, True, [wire.PutOpResult()]).encode()


def err(code: int, msg: str = "x", leader: Optional[int] = None, addr: Optional[Endpoint] = None) -> tuple[int, bytes]:
    return Kind.ERROR, wire.encode_error(errors.server_error(code, msg, leader=leader, leader_address=addr))


def session(s: _core.Send) -> tuple[Optional[int], Optional[int]]:
    p = wire.decode_proposal(s.body)
    return p.client_id, p.sequence


def put_op(c: _core.Core) -> _core.Op:
    return _core.put(c, b"k", b"v", if_absent=False, prev=False, timeout=None)


def test_not_leader_hint_is_followed_at_once_with_the_same_session() -> None:
    c = core()
    answers = iter([err(1, "not the leader", 3, C), ok_write()])
    res, sends, sleeps = run(put_op(c), lambda s: next(answers))
    assert [s.endpoint for s in sends] == [A, C] and sleeps == 0
    assert session(sends[0]) == session(sends[1]) == (c.sessions.primary.client_id, 1)
    assert isinstance(res, fauna.PutResult) and res.revision == 10
    assert c.state.leader == C  # later writes go straight there
    _, sends2, _ = run(put_op(c), lambda s: ok_write(11))
    assert [s.endpoint for s in sends2] == [C] and session(sends2[0])[1] == 2


def test_timeout_retries_reuse_the_sequence_and_use_it_up() -> None:
    c = core()
    answers = iter([errors.RequestTimeout("slow"), errors.ConnectionLost("reset"), ok_write(20, replay=True)])
    res, sends, sleeps = run(put_op(c), lambda s: next(answers))
    assert len({session(s) for s in sends}) == 1 and session(sends[0])[1] == 1
    assert sleeps == 2 and len({s.endpoint for s in sends}) > 1  # backoff, and another node
    assert isinstance(res, fauna.PutResult) and res.is_replay and res.revision == 20
    _, sends2, _ = run(put_op(c), lambda s: ok_write())
    assert session(sends2[0]) == (c.sessions.primary.client_id, 2)


def test_a_write_refused_everywhere_gives_its_sequence_back() -> None:
    c = core(timeout=0.3)
    with pytest.raises(fauna.DeadlineExceeded) as e:
        run(put_op(c), lambda s: (time.sleep(0.01), err(1, "no leader"))[1])
    assert not e.value.maybe_applied and isinstance(e.value.last_error, fauna.NotLeader)
    assert isinstance(e.value, TimeoutError)
    _, sends, _ = run(put_op(c), lambda s: ok_write())
    assert session(sends[0]) == (c.sessions.primary.client_id, 1)


def test_a_write_that_may_have_applied_uses_its_sequence_up() -> None:
    c = core(timeout=0.3)
    with pytest.raises(fauna.DeadlineExceeded) as e:
        run(put_op(c), lambda s: (time.sleep(0.01), errors.RequestTimeout("slow"))[1])
    assert e.value.maybe_applied
    _, sends, _ = run(put_op(c), lambda s: ok_write())
    assert session(sends[0])[1] == 2


def test_session_expired_before_any_ambiguity_opens_a_new_session() -> None:
    c = core()
    expired = wire.ApplyResult(9, False, wire.Outcome.SESSION_EXPIRED, sequence=1, last_applied=None)
    answers = iter([(Kind.WRITE_RESPONSE, expired.encode()), ok_write(12)])
    res, sends, _ = run(put_op(c), lambda s: next(answers))
    first, second = session(sends[0]), session(sends[1])
    assert first[0] != second[0] and second[1] == 1
    assert isinstance(res, fauna.PutResult) and res.revision == 12


def test_session_expired_after_an_ambiguous_attempt_is_an_error() -> None:
    c = core()
    expired = wire.ApplyResult(9, False, wire.Outcome.SESSION_EXPIRED, sequence=1, last_applied=4)
    answers = iter([errors.RequestTimeout("slow"), (Kind.WRITE_RESPONSE, expired.encode())])
    with pytest.raises(fauna.SessionExpired) as e:
        run(put_op(c), lambda s: next(answers))
    assert e.value.sequence == 1 and e.value.last_applied == 4


def test_non_retryable_errors_end_the_call() -> None:
    c = core()
    _, sends, _ = run(_core.get(c, b"k", revision=None, serializable=False, timeout=None),
                      lambda s: (Kind.READ_RESPONSE, wire.RangeResult([], 0, False, 3).encode()))
    for code, cls in ((5, fauna.Compacted), (6, fauna.FutureRevision), (7, fauna.InvalidRequest),
                      (8, fauna.InternalError), (10, fauna.Unsupported)):
        calls = []
        with pytest.raises(cls) as e:
            run(_core.get(c, b"k", revision=3, serializable=False, timeout=None),
                lambda s: (calls.append(s), err(code, "no"))[1])
        assert len(calls) == 1 and e.value.code == code and e.value.endpoint is not None


def test_retryable_server_errors_are_retried() -> None:
    c = core()
    answers = iter([err(2, "no leader"), err(3, "busy"), err(4, "slow"), err(11, "behind"),
                    (Kind.READ_RESPONSE, wire.RangeResult([], 0, False, 3).encode())])
    res, sends, sleeps = run(_core.get(c, b"k", revision=None, serializable=True, timeout=None),
                             lambda s: next(answers))
    assert res is None and len(sends) == 5 and sleeps == 4


def test_unreachable_nodes_raise_connection_failed() -> None:
    c = core(timeout=0.2)
    with pytest.raises(fauna.ConnectionFailed):
        run(put_op(c), lambda s: (time.sleep(0.01), errors.ConnectionFailed("refused"))[1])


def test_attempts_max_bounds_a_call() -> None:
    c = core(attempts_max=3, timeout=30.0)
    calls = []
    with pytest.raises(fauna.DeadlineExceeded):
        run(put_op(c), lambda s: (calls.append(s), err(3, "busy"))[1])
    assert len(calls) == 3


def test_attempts_never_outlive_the_deadline() -> None:
    c = core(timeout=0.5, request_timeout=3.0, connect_timeout=2.0)
    _, sends, _ = run(put_op(c), lambda s: ok_write())
    assert sends[0].timeout <= 0.5 and sends[0].connect_timeout <= 0.5


def test_concurrent_writes_take_distinct_sessions() -> None:
    c = core()
    op1, op2 = put_op(c), put_op(c)
    s1, s2 = next(op1), next(op2)
    assert isinstance(s1, _core.Send) and isinstance(s2, _core.Send)
    assert session(s1)[0] != session(s2)[0]
    for op in (op1, op2):
        with pytest.raises(StopIteration):
            op.send(ok_write())
    assert c.sessions.idle == 2


def test_an_abandoned_write_uses_its_sequence_up() -> None:
    c = core()
    op = put_op(c)
    first = next(op)
    op.close()  # e.g. an asyncio task cancelled while its attempt was in flight
    _, sends, _ = run(put_op(c), lambda s: ok_write())
    assert session(first)[1] == 1 and session(sends[0]) == (session(first)[0], 2)


def test_client_side_checks_send_nothing() -> None:
    c = core()
    with pytest.raises(fauna.InvalidArgument):
        next(_core.put(c, b"k", b"v" * (wire.VALUE_BYTES_MAX + 1), if_absent=False, prev=False, timeout=None))
    with pytest.raises(TypeError):
        next(_core.put(c, "k", b"v", if_absent=False, prev=False, timeout=None))
    _, sends, _ = run(put_op(c), lambda s: ok_write())
    assert session(sends[0])[1] == 1


def test_serializable_reads_spread_over_the_nodes() -> None:
    c = core()
    seen = set()
    for _ in range(6):
        _, sends, _ = run(_core.get(c, b"k", revision=None, serializable=True, timeout=None),
                          lambda s: (Kind.READ_RESPONSE, wire.RangeResult([], 0, False, 3).encode()))
        seen.add(sends[0].endpoint)
    assert seen == {A, B, C}


def test_a_wrong_answer_kind_is_a_protocol_error() -> None:
    c = core()
    with pytest.raises(fauna.ProtocolError, match="want write_response"):
        run(put_op(c), lambda s: (Kind.READ_RESPONSE, b""))


def test_a_write_refused_for_its_user_leaves_its_session_out_of_the_pool() -> None:
    # permissionDenied may be the session's own refusal (another user owns it): the next write
    # must not reuse it, while other refusals keep the session for the next sequence.
    c = core()
    denied = wire.ApplyResult(9, False, wire.Outcome.INVALID, invalid_code=10, reason="client session 7 belongs to another user")
    _, first, _ = run(put_op(c), lambda s: ok_write())
    with pytest.raises(fauna.PermissionDenied):
        run(put_op(c), lambda s: (Kind.WRITE_RESPONSE, denied.encode()))
    assert c.sessions.idle == 0
    _, after, _ = run(put_op(c), lambda s: ok_write())
    assert session(after[0])[0] != session(first[0])[0] and session(after[0])[1] == 1
    leases = wire.ApplyResult(11, False, wire.Outcome.INVALID, invalid_code=6, reason="no lease 5")
    with pytest.raises(errors.ServerError):
        run(put_op(c), lambda s: (Kind.WRITE_RESPONSE, leases.encode()))
    _, again, _ = run(put_op(c), lambda s: ok_write())
    assert session(again[0]) == (session(after[0])[0], 3)
