"""Two processes for a big run: a forked worker does the Python half of each batch
while the run's process reads the next batch and writes the one before."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loyalty_cli import workers
from loyalty_cli.engine import output

if TYPE_CHECKING:
    from loyalty_cli.engine.run import Engine

BATCH = 2000  # customers per batch at most

# From this many batches on, a run reads and writes in this process while a forked
# worker does the Python half of each batch (a first run over a long history).
PIPELINE_MIN_BATCHES = 4
# A nightly run's few thousand customers are cut into this many batches, so that the
# worker computes while this process reads and writes (the batches of a big run are
# BATCH long); never smaller than MIN_BATCH, so a small run stays in one process.
PIPELINE_BATCHES = 8
MIN_BATCH = 250


def batch_size(customers: int) -> int:
    """Customers per batch for a run over `customers` (see the constants above)."""
    return min(BATCH, max(MIN_BATCH, -(-customers // PIPELINE_BATCHES)))


class Pipeline:
    """Batch i+1 is read and batch i-1 written while a worker process computes batch i.

    The worker is forked after the engine is set up, so it holds the same program
    versions, marks and memory of referrals; it never touches the database. The
    engine state that crosses batches (next entry id, referral payouts due, the
    result) lives in the worker alone; the order of all writes, the ids and the
    transaction are the sequential run's. Reading batch i+1 before batch i is written
    reads nothing batch i writes: every read is of the batch's own customers (ledger,
    scored receipts, stored states), of their receipts (scored receipts by
    transaction_id) or of input tables the run does not write.
    Referrers paid late are read after everything before them is written.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # One pipe each way; a thread sends, so that the two processes never both
        # wait to write a large message to each other.
        their_in, self.out_pipe = workers.pipe()
        self.in_pipe, their_out = workers.pipe()
        self.worker = workers.start(
            _serve, engine, their_in, their_out, (self.out_pipe, self.in_pipe)
        )
        their_in.close()
        their_out.close()
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.sender = threading.Thread(target=self._send_all, daemon=True)
        self.sender.start()

    def _send_all(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                self.out_pipe.send(message)
            except OSError:
                return  # the worker is gone: the run sees it on its side of the pipe

    def process(self, chunks: list[list[str]], bar: Callable[..., None] | None) -> None:
        engine, send = self.engine, self.outbox.put
        finished = False
        try:
            written = [0, 0]  # vouchers issued, withdrawn

            def write(out: tuple[Any, ...]) -> None:
                for i, n in enumerate(output.write(engine.conn, *out)):
                    written[i] += n

            send(("batch", chunks[0], engine.fetch(chunks[0])))
            for i, chunk in enumerate(chunks):
                if i + 1 < len(chunks):
                    send(("batch", chunks[i + 1], engine.fetch(chunks[i + 1])))
                write(self._answer("out"))
                if bar is not None:
                    bar(len(chunk))
            while True:
                send(("late",))
                late = self._answer("late")
                if not late:
                    break
                send(("batch", late, engine.fetch(late)))
                write(self._answer("out"))
            send(("end",))
            engine.result, engine.next_id = self._answer("end")
            engine.result.vouchers += written[0]
            engine.result.vouchers_withdrawn += written[1]
            finished = True
        finally:
            if not finished:
                self.worker.kill()
            self.outbox.put(None)
            self.sender.join()
            self.out_pipe.close()
            self.in_pipe.close()
            self.worker.join()

    def _answer(self, kind: str) -> Any:
        """The worker's next message, which must be `kind`; its failure raised here."""
        try:
            message = self.in_pipe.recv()
        except EOFError:
            raise RuntimeError("the run's worker process ended unexpectedly") from None
        if message[0] == "error":
            raise message[1]
        if message[0] != kind:
            raise RuntimeError(f"the run's worker answered {message[0]!r}, not {kind!r}")
        return message[1]


def _serve(engine: Engine, inbox: Any, outbox: Any, parent_ends: tuple[Any, Any]) -> None:
    """The worker: build and compute the batches it is sent, in order."""
    for end in parent_ends:
        end.close()  # so that the run's ends closing reads as EOF here
    try:
        while True:
            message = inbox.recv()
            if message[0] == "batch":
                _, chunk, raw = message
                out = engine.compute(chunk, engine.build(chunk, raw))
                outbox.send(("out", out.values()))
            elif message[0] == "late":
                outbox.send(("late", engine.late()))
            else:
                outbox.send(("end", (engine.result, engine.next_id)))
                return
    except (EOFError, BrokenPipeError):
        return  # the run went away (killed or failed): nothing to answer
    except BaseException as exc:  # noqa: BLE001 - handed to the run, which raises it
        workers.send_error(outbox, exc)
