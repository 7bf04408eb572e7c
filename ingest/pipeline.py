"""CPU-heavy stages as batch functions that run in worker processes: clean+fingerprint, then NER.

trafilatura and spaCy hold the GIL, so threads do not scale them; two worker processes measured
~1.95x on this 2-core machine where `nlp.pipe(n_process=2)` gave 1.25x. Each worker loads the spaCy
model once and keeps it for the life of the pool.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from ingest import dedup
from ingest.boilerplate import known_lines_for
from ingest.errors import NewsflowError
from ingest.models import Article, ArticleEntities, Failure, FetchResult, Fingerprint
from ingest.settings import Settings

T = TypeVar("T")
R = TypeVar("R")


class Prepared(BaseModel):
    """A cleaned article with its dedup fingerprint."""

    article: Article
    fingerprint: Fingerprint


class PrepareOutcome(BaseModel):
    """Result of the clean+fingerprint stage for a batch of pages."""

    prepared: list[Prepared] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)

    def merge(self, other: "PrepareOutcome") -> "PrepareOutcome":
        """Concatenate two outcomes, keeping order."""
        return PrepareOutcome(prepared=self.prepared + other.prepared, failures=self.failures + other.failures)


def prepare_article(article: Article, settings: Settings) -> Prepared:
    """Hash and fingerprint an already-clean article (seeds, re-processing)."""
    article = article.model_copy(update={"content_hash": dedup.content_hash(article.text)})
    return Prepared(article=article, fingerprint=dedup.fingerprint(article.id, article.text, settings.dedup))


def prepare_pages(
    pages: Sequence[FetchResult], settings: Settings, site_boilerplate: Mapping[str, Collection[str]] | None = None
) -> PrepareOutcome:
    """Clean each page to an Article and fingerprint it; pages that fail become Failure rows.

    `site_boilerplate`: site (ingest.boilerplate.site_of) -> its known template lines, as returned by
    warehouse.boilerplate.recurring_lines for the batch's pages; bind it with functools.partial for StagePool.map.
    """
    # Imported here: it loads trafilatura (and lxml's HTML cleaner), which only the processes that
    # clean need; the flow process that plans and loads (or finds nothing new) never does.
    from ingest import clean as clean_stage

    out = PrepareOutcome()
    for page in pages:
        try:
            known = known_lines_for(page.final_url or page.url, site_boilerplate)
            article = clean_stage.clean(page, settings.clean, known)
            out.prepared.append(prepare_article(article, settings))
        except NewsflowError as exc:
            out.failures.append(
                Failure(url=page.url, source=page.source, stage="clean", reason=exc.reason, detail=str(exc), retryable=exc.retryable)
            )
        except Exception as exc:  # a parser bug on one hostile page must not sink the batch
            out.failures.append(
                Failure(url=page.url, source=page.source, stage="clean", reason="clean_error", detail=f"{type(exc).__name__}: {exc}", retryable=False)
            )
    return out


def extract_entities(articles: Sequence[Article], settings: Settings) -> list[ArticleEntities]:
    """Run NER (with in-article normalisation) over a batch of articles."""
    from ingest import entities  # imported lazily: spaCy is heavy and only NER workers need it

    return entities.extract_entities(list(articles), settings.entities)


def warm_models(settings: Settings) -> None:
    """Load the spaCy model of the default language (cached per process): run in each worker before NER is needed.

    Other languages' models load on their first article: loading the French one costs ~3 s of CPU per
    worker (its tokenizer exceptions compile a large regex), wasted on a run without French articles.
    """
    from ingest import entities

    lang = settings.entities.assume_language or "en"
    model = settings.entities.models_by_language.get(lang)
    if model is not None:
        entities.load_nlp(model, sentences_before_ner=settings.entities.sentences_before_ner, numpy_blas=settings.entities.numpy_blas)


# Numeric libraries' thread counts: one each, since newsflow runs one worker process per core.
_SINGLE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(parent: int) -> None:
    """Keep each worker's numeric libraries single-threaded: two processes on two cores, not 2xN threads."""
    for var in _SINGLE_THREAD_VARS:
        os.environ[var] = "1"
    # A worker killed by native code (a signal, an abort on heap corruption) prints its Python stack
    # before the flow sees only "a process in the pool terminated abruptly".
    if sys.__stderr__ is not None and not faulthandler.is_enabled():
        with contextlib.suppress(OSError, ValueError):
            faulthandler.enable(file=sys.__stderr__)
    # A worker whose parent is SIGKILLed (or OOM-killed) would wait on the task queue forever: it holds
    # that queue's write end itself, so it never sees end-of-file. It leaves when its parent does.
    # `parent` comes from the parent itself: one killed while this worker was still importing is noticed too.
    threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Exit this process once `parent` is gone (it is re-parented); a daemon thread's loop."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)  # no cleanup to do: nothing this worker holds outlives the run it served


def _chunks(items: Sequence[T], n: int) -> list[list[T]]:
    """Split into at most n contiguous, near-equal chunks (order preserved)."""
    n = max(1, min(n, len(items)))
    size, rem = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < rem else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def _worker_ready() -> None:
    """Nothing: submitted once per worker to start it."""


class Pending(Generic[R]):
    """Results of StagePool.submit: one per chunk, in order, once `result()` has waited for them (kept after)."""

    def __init__(self, done: list[R] | None = None, futures: Sequence[Future] = ()) -> None:
        self._done = done
        self._futures = list(futures)

    def result(self) -> list[R]:
        """Wait for every chunk; the same list on every call."""
        if self._done is None:
            self._done = [f.result() for f in self._futures]
        return self._done


class StagePool:
    """Runs batch functions over chunks in worker processes (or inline for small batches).

    `executor` may be any concurrent.futures Executor that pickles its calls, e.g. a Dask
    ClientExecutor; the pool then never runs a stage inline and does not shut the executor down.
    """

    def __init__(self, workers: int, executor: Executor | None = None, min_chunk: int = 8) -> None:
        self.workers = max(1, workers)
        self.min_chunk = min_chunk
        self._executor = executor
        self._owned = False
        self._used = False  # a run asked for the workers (warm or submit); only then does close() wait for them

    def _get_executor(self) -> Executor | None:
        if self._executor is None and self.workers > 1:
            # The workers inherit this: BLAS reads it when NumPy loads, which in a spawned worker is
            # before _worker_init runs (unpickling the task imports ingest). A user's own value is kept.
            for var in _SINGLE_THREAD_VARS:
                os.environ.setdefault(var, "1")
            # spawn, not fork: the flow process runs threads (Prefect's API client, event loop) and
            # forking a threaded process can deadlock in the child.
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                initargs=(os.getpid(),),
            )
            self._owned = True
        return self._executor

    def warm(self, fn: Callable[[], object]) -> None:
        """Run `fn` once in each worker without waiting (e.g. load the spaCy model while the flow discovers and fetches)."""
        self._used = True
        executor = self._get_executor() if self.workers > 1 else None
        if executor is not None:
            for _ in range(self.workers):
                executor.submit(fn)

    def map(
        self, fn: Callable[[Sequence[T], Settings], R], items: Sequence[T], settings: Settings,
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        """Apply `fn` to chunks of `items`; returns one result per chunk, in order.

        `on_done(k)` is called as each chunk of k items finishes (progress per article, not per batch).
        """
        return self.submit(fn, items, settings, on_done).result()

    def submit(
        self, fn: Callable[[Sequence[T], Settings], R], items: Sequence[T], settings: Settings,
        on_done: Callable[[int], None] | None = None,
    ) -> "Pending[R]":
        """Like map, without waiting: the chunks queue in the workers behind earlier submissions.

        This is how batches overlap: the flow queues NER of batch i, then cleaning of batch i+1, and
        loads batch i while the workers clean. Small batches (no executor needed) run here, at once.
        """
        if not items:
            return Pending([])
        # Up to 4 chunks per worker: progress moves in small steps, and a slow chunk (one huge page)
        # does not leave the other worker idle until the batch ends.
        n = min(self.workers * 4, max(1, len(items) // self.min_chunk))
        if self._executor is not None and not self._owned:
            # A caller-supplied executor (e.g. a Dask cluster) gets all the work, small batches too:
            # its point is to keep the CPU stages (and the spaCy model) off this process.
            executor: Executor | None = self._executor
        else:
            executor = self._get_executor() if n > 1 else None
        self._used = True
        if executor is None:
            out = [fn(items, settings)]
            if on_done:
                on_done(len(items))
            return Pending(out)
        futures = []
        for chunk in _chunks(items, n):
            f = executor.submit(fn, chunk, settings)
            if on_done:
                f.add_done_callback(lambda _f, k=len(chunk): on_done(k))
            futures.append(f)
        return Pending(futures=futures)

    def close(self, wait: bool = True) -> None:
        """Shut down worker processes this pool started; `wait=False` lets them exit in the background.

        Without waiting, the processes are still joined: by the executor's own thread once they exit,
        and at the latest when this process exits.
        """
        if self._owned and self._executor is not None:
            if self._used:
                self._executor.shutdown(wait=wait, cancel_futures=True)
            else:
                # Started ahead of a run that had nothing to process (see prestart): stop the worker now
                # rather than wait for the model load it may still be in.
                procs = list((getattr(self._executor, "_processes", None) or {}).values())
                for proc in procs:
                    proc.terminate()
                self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None

    def start_one(self, fn: Callable[[], object]) -> "StagePool":
        """Spawn one worker now and run `fn` in it; the others spawn when the run first needs them."""
        executor = self._get_executor() if self.workers > 1 else None
        if executor is not None:
            executor.submit(fn)
        return self

    def __enter__(self) -> "StagePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A pool started by the CLI before the flow (see prestart), adopted by the run's stage_pool.
_prestarted: StagePool | None = None


def prestart(workers: int, warm: Callable[[], object]) -> None:
    """Spawn one worker and run `warm` in it (the spaCy model load) while this process starts Prefect.

    The CLI spends its first ~2 s on one core (imports, Prefect's flow run, discovery); the first worker's
    ~2 s of imports and model load fit on the other. One worker only: with both, a no-op run (which never
    needs them) would share its core. The run adopts the pool (take_prestarted); a run with nothing to
    process stops the worker without waiting for it.
    """
    global _prestarted
    if workers > 1 and _prestarted is None:
        _prestarted = StagePool(workers).start_one(warm)


def take_prestarted(workers: int) -> StagePool | None:
    """The prestarted pool if it has `workers` workers (the caller then owns it), else None."""
    global _prestarted
    pool, _prestarted = _prestarted, None
    if pool is not None and pool.workers != max(1, workers):
        pool.close()
        return None
    return pool


def release_prestarted() -> None:
    """Stop a prestarted pool no run adopted (the flow failed before it started)."""
    global _prestarted
    pool, _prestarted = _prestarted, None
    if pool is not None:
        pool.close()
