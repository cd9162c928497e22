"""A/B chat: one image and question to two to four models (runs' results, a base), turn after turn, each model
answering in its own conversation; the estimator decides whether they are loaded together (answers generated side
by side) or one after another."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.chat import CHAT_LOADINGS, ChatService
from core.datasets.records import IMAGE_PLACEHOLDER, Message
from core.hardware import resolve_device
from core.memory import MemoryInputs, estimate, verdict
from core.memory.advisor import CHAT_CONTEXT, MemoryAdvisor
from core.memory.estimate import FITS, GB
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.store.registry import Registry

MIN_MODELS, MAX_MODELS = 2, 4  # two or three checkpoints, and optionally the base
TOGETHER = ("✅ All {n} models fit together (about {need:.2f} GB of {room}): they are loaded at once and answer "
            "side by side.")
APART = ("⚠️ The {n} models do not fit together (about {need:.2f} GB needed, {room}): they are loaded one after "
         "another, each released before the next, so the answers come in turn.")
UNKNOWN = ("⚠️ The memory of {model} cannot be estimated ({why}): the models are loaded one after another to be "
           "safe.")


@dataclass
class ABPlan:
    choices: list[str]
    together: bool
    needed_gb: float | None  # all of them loaded at once (one CUDA context)
    room_gb: float | None
    room: str  # where they would have to fit, in words
    message: str


@dataclass
class ABTurn:
    """An earlier turn of an A/B conversation: the question, the image it brought (if any) and each model's
    answer, in the order of the models (None where that model failed: the turn is left out of its history)."""

    question: str
    image: str | None
    answers: list[str | None]

    @classmethod
    def of(cls, turn: ABTurn | dict) -> ABTurn:
        return turn if isinstance(turn, ABTurn) else cls(str(turn["question"]), turn.get("image"),
                                                         list(turn["answers"]))


def conversation(earlier: list[ABTurn], model: int, question: str, image: Path | None
                 ) -> tuple[list[Message], list[Path]]:
    """Model ``model``'s own conversation: the earlier turns with its answers, then the new question; the images
    in the order their placeholders appear."""
    messages: list[Message] = []
    images: list[Path] = []
    for turn in earlier:
        answer = turn.answers[model]
        if answer is None:
            continue
        content = turn.question
        if turn.image:
            content = f"{IMAGE_PLACEHOLDER}\n{content}"
            images.append(Path(turn.image))
        messages += [Message("user", content), Message("assistant", answer)]
    content = question.strip()
    if image:
        content = f"{IMAGE_PLACEHOLDER}\n{content}"
        images.append(Path(image))
    return [*messages, Message("user", content)], images


@dataclass
class ABUpdate:
    """The answers so far (one per choice, in order), what is happening now, and per-choice errors."""

    plan: ABPlan
    answers: list[str]
    errors: list[str | None]
    status: str = ""
    done: bool = False
    active: list[int] = field(default_factory=list)


def busy_jobs(runs: int, evaluations: int) -> str:
    """What holds the GPU, in words: "2 run(s) training", "1 evaluation(s) running", or both."""
    parts = [f"{runs} run(s) training"] * bool(runs) + [f"{evaluations} evaluation(s) running"] * bool(evaluations)
    return " and ".join(parts)


def problem_text(error: BaseException) -> str:
    if isinstance(error, ProblemsError):
        return "; ".join(str(p) for p in error.problems)
    return f"{type(error).__name__}: {error}"


class ABChat:
    """Holds the models of the last together-comparison loaded (one ChatService each) until another starts."""

    def __init__(self, paths: StudioPaths, registry: Registry, memory: MemoryAdvisor):
        self.paths, self.registry, self.memory = paths, registry, memory
        self._services: dict[str, ChatService] = {}
        self._lock = threading.Lock()

    def _service(self) -> ChatService:
        return ChatService(self.paths, self.registry)

    def check(self, choices: list[str], question: str, loading: str, earlier: list[ABTurn] = ()) -> list[str]:
        chosen = list(dict.fromkeys(c for c in choices if c))
        problems = []
        if any(len(turn.answers) != len(chosen) for turn in earlier):
            problems.append(Problem("the conversation so far was with other models; start a new conversation",
                                    field="models"))
        if not MIN_MODELS <= len(chosen) <= MAX_MODELS:
            problems.append(Problem(f"choose {MIN_MODELS} to {MAX_MODELS} different models (two or three "
                                    f"checkpoints and optionally the base); got {len(chosen)}", field="models"))
        if not (question or "").strip():
            problems.append(Problem("type a question", field="question"))
        if loading not in CHAT_LOADINGS:
            problems.append(Problem(f"choose one of {', '.join(CHAT_LOADINGS)}", field="loading"))
        if problems:
            raise ProblemsError(problems)
        return chosen

    def room(self, card: object = None) -> tuple[float, str, float]:
        """Where the models must fit: (GB, in words, GB already taken by training runs and evaluations). On CUDA
        (or for a card named by size) the card beside the runs training and the evaluations running now; on a CPU
        the memory free now."""
        if card is None and resolve_device("auto") == "cpu":
            import psutil

            free = psutil.virtual_memory().available / GB
            return free, f"{free:.1f} GB of free memory on this machine", 0.0
        chosen = self.memory.card(card)
        running, evaluating = self.memory.gpu_jobs()
        training = sum(float(j.estimate["total_gb"]) for j in [*running, *evaluating])
        beside = f" beside {training:.1f} GB for {busy_jobs(len(running), len(evaluating))} now" \
            if running or evaluating else ""
        return chosen["gb"] - training, f"{chosen['label']} ({chosen['gb']:.1f} GB){beside}", training

    def plan(self, choices: list[str], loading: str = "auto", card: object = None) -> ABPlan:
        """Together when the estimator says all of them fit at once (the verdict "fits"), else one after another."""
        room_gb, room, _ = self.room(card)
        totals, context = [], 0.0
        probe = self._service()
        for choice in choices:
            try:
                model, bits = probe.weights_of(choice, loading)
                arch = self.memory.architecture(model)
            except Exception as e:  # noqa: BLE001 - an unknown model is loaded alone, never refused here
                return ABPlan(choices, False, None, room_gb, room, UNKNOWN.format(model=choice, why=problem_text(e)))
            est = estimate(MemoryInputs(arch=arch, mode="inference", seq_len=CHAT_CONTEXT, weight_bits=bits,
                                        double_quant=bits == 4, weight_bytes=2, compute_bytes=2, method="lora"))
            totals.append(est.total_gb)
            context = est.term("cuda_context").gb
        needed = sum(totals) - context * (len(totals) - 1)  # one process: one CUDA context
        together = verdict(needed, room_gb) == FITS
        message = (TOGETHER if together else APART).format(n=len(choices), need=needed, room=room)
        return ABPlan(choices, together, needed, room_gb, room, message)

    def release(self) -> None:
        with self._lock:
            for service in self._services.values():
                service.release()
            self._services = {}

    def stream(self, choices: list[str], question: str, image: Path | None = None, *, max_new_tokens: int = 64,
               temperature: float = 0.0, loading: str = "auto", card: object = None,
               earlier: list[ABTurn | dict] | None = None) -> Iterator[ABUpdate]:
        """Ask every choice the same question (about the same image, if one is given), each after its own answers
        to the ``earlier`` turns; yields the answers as they grow."""
        turns = [ABTurn.of(t) for t in earlier or []]
        chosen = self.check(choices, question, loading, turns)
        plan = self.plan(chosen, loading, card)
        talks = [conversation(turns, i, question, image) for i in range(len(chosen))]
        messages, images = [m for m, _ in talks], [i for _, i in talks]
        kwargs = {"max_new_tokens": max_new_tokens, "temperature": temperature, "loading": loading}
        update = ABUpdate(plan, [""] * len(chosen), [None] * len(chosen))
        if plan.together:
            yield from self._together(chosen, messages, images, kwargs, update)
        else:
            yield from self._one_by_one(chosen, messages, images, kwargs, update)
        update.done, update.active, update.status = True, [], "done"
        yield update

    def _one_by_one(self, chosen: list[str], messages: list[list[Message]], images: list[list[Path]], kwargs: dict,
                    update: ABUpdate) -> Iterator[ABUpdate]:
        self.release()  # the last together-comparison's models go first
        service = self._service()
        for i, choice in enumerate(chosen):
            update.active, update.status = [i], f"loading and asking model {i + 1} of {len(chosen)}"
            yield update
            try:
                for text in service.stream(choice, messages[i], images[i], **kwargs):
                    update.answers[i] = text
                    yield update
            except Exception as e:  # noqa: BLE001 - one model failing leaves the others' answers
                update.errors[i] = problem_text(e)
            finally:
                service.release()
            yield update

    def _together(self, chosen: list[str], messages: list[list[Message]], images: list[list[Path]], kwargs: dict,
                  update: ABUpdate) -> Iterator[ABUpdate]:
        with self._lock:
            for name in [n for n in self._services if n not in chosen]:
                self._services.pop(name).release()
            services = [self._services.setdefault(c, self._service()) for c in chosen]
        events: queue.Queue = queue.Queue()

        def ask(i: int) -> None:
            try:
                for text in services[i].stream(chosen[i], messages[i], images[i], **kwargs):
                    events.put((i, text, None))
            except Exception as e:  # noqa: BLE001 - reported in that model's column
                events.put((i, None, problem_text(e)))
            events.put((i, None, "__end__"))

        update.active, update.status = list(range(len(chosen))), f"loading {len(chosen)} models and asking them"
        yield update
        for i in range(len(chosen)):
            threading.Thread(target=ask, args=(i,), daemon=True, name=f"ab-chat-{i}").start()
        running = len(chosen)
        while running:
            i, text, error = events.get()
            if error == "__end__":
                running -= 1
                update.active = [a for a in update.active if a != i]
            elif error is not None:
                update.errors[i] = error
            else:
                update.answers[i] = text
            yield update
