"""Options shared by the commands, and options derived from the library's own models.

The train options are the fields of ``digitflow.plan.TrainRequest`` and the gate options
those of ``digitflow.promotion.GateConfig``: a field added there is an option here, with
its type, its description as help, and its checks (pydantic's, reported in one line).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Collection
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from digitflow.cli.errors import bad_options, option
from digitflow.plan import TrainRequest
from digitflow.promotion import GateConfig, ReaderGateConfig
from digitflow.settings import Settings, for_store

Command = TypeVar("Command", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Object store: a directory or s3://bucket/prefix "
        "[env: DIGITFLOW_STORE; default .digitflow/store]",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (the summary) as the last line.")
]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        help="Directory, http(s) base URL or s3:// prefix of the four MNIST .gz "
        "files [env: DIGITFLOW_MNIST_SOURCE; default: public mirrors]"
    ),
]


def names(text: str) -> list[str]:
    """Comma-separated names as a list (``""``: none)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def settings(store: str | None) -> Settings:
    """This command's settings, built once: the environment's, with ``--store`` if given."""
    return for_store(store)


def params(model: type[M], fields: dict[str, Any]) -> M:
    """Flow parameters validated up front; a bad option is reported as that option."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise bad_options(exc) from None


def _plain(annotation: Any) -> Any:
    """``annotation`` without ``None`` (``int | None`` → ``int``)."""
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [a for a in get_args(annotation) if a is not type(None)]
        return kept[0] if len(kept) == 1 else annotation
    return annotation


def _option(name: str, field: FieldInfo, note: str | None) -> inspect.Parameter:
    """A typer option for a model field: a flag pair for bool, a choice for a Literal, a
    comma-separated string for a list of names. With a ``note`` on its default, it is None
    unless given; without one, the field's own default."""
    kind = _plain(field.annotation)
    spelled = option(name)
    declared: dict[str, Any] = {"help": field.description or ""}
    if kind is bool:
        spelled = f"{spelled}/--no-{spelled[2:]}"
    elif get_origin(kind) is Literal:  # checked by pydantic, as every value is
        declared["help"] += f" ({' | '.join(str(v) for v in get_args(kind))})"
        kind = str
    elif get_origin(kind) is list:
        kind = str
        declared["help"] = "Comma-separated. " + declared["help"]
    optional = note is not None
    declared["help"] += note or ""
    typed = kind | None if optional else kind
    annotation = Annotated[typed, typer.Option(spelled, **declared)]  # type: ignore[valid-type]
    default = None if optional else field.default
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


def _extend(
    command: Command, into: str, added: list[inspect.Parameter],
    gather: Callable[[dict[str, Any]], Any],
) -> Command:  # fmt: skip
    """``command`` with the options ``added``, whose values ``gather`` makes into its one
    argument ``into``; its own options stay, ``--store`` and ``--json`` last."""
    signature = inspect.signature(command, eval_str=True)
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in signature.parameters.values() if p.name != into]  # fmt: skip

    @functools.wraps(command)
    def wrapper(**values: Any) -> Any:
        taken = {p.name: values.pop(p.name) for p in added}
        return command(**values, **{into: gather(taken)})

    last = [p for p in own if p.name in ("store", "as_json")]
    parameters = [p for p in own if p not in last] + added + last
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]


def options_from(
    model: type[BaseModel],
    into: str,
    unless_given: str | None = None,
    keep: Collection[str] = (),
    exclude: Collection[str] = (),
    prefix: str = "",
) -> Callable[[Command], Command]:
    """Add an option per field of ``model`` to a command, which gets the values as the dict
    ``into``. Each has the field's default, or, with ``unless_given`` (what fills it then,
    for the help), is passed only when given, except the fields to ``keep`` defaults. With
    a ``prefix``, the options are spelled with it (``reader_`` → ``--reader-max-error``)."""
    here = [n for n in model.model_fields if n in model.__annotations__]  # before inherited
    ordered = here + [n for n in model.model_fields if n not in here]
    fields = {n: model.model_fields[n] for n in ordered if n not in exclude}
    notes = {n: None if n in keep or unless_given is None else f" [default: {unless_given}]"
             for n in fields}  # fmt: skip

    def gather(taken: dict[str, Any]) -> dict[str, Any]:
        values = {name.removeprefix(prefix): value for name, value in taken.items()}
        for name, value in values.items():
            if get_origin(_plain(fields[name].annotation)) is list and value is not None:
                values[name] = names(value)
        return {name: value for name, value in values.items() if value is not None}

    added = [_option(prefix + name, field, notes[name]) for name, field in fields.items()]
    return lambda command: _extend(command, into, added, gather)


# What to train: a profile, and the models, recipe fields and ensemble that win over it.
train_options = options_from(
    TrainRequest, "request", "the profile's", keep={"profile", "mode"}, exclude={"overrides"}
)
# The promotion gates' thresholds, with each gate's own defaults.
classifier_gate_options = options_from(GateConfig, "gate")
reader_gate_options = options_from(ReaderGateConfig, "reader_gate", prefix="reader_")


def gate_options(command: Command) -> Command:
    """Both gates' options: the classifiers' (``gate``) and the line readers' (``reader_gate``)."""
    return classifier_gate_options(reader_gate_options(command))


def retrain_options(command: Command) -> Command:
    """The MNIST source, the train and the gate options, handed to ``command`` as the
    retrain flow's parameters (less the store), ``retraining``."""
    parts = [
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY),
        inspect.Parameter("gate", inspect.Parameter.KEYWORD_ONLY),
        inspect.Parameter("reader_gate", inspect.Parameter.KEYWORD_ONLY),
        inspect.Parameter("source", inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=SourceOpt),
    ]  # fmt: skip

    def gather(taken: dict[str, Any]) -> dict[str, Any]:
        promote = {"gate": taken["gate"], "reader_gate": taken["reader_gate"]}
        return {"ingest": {"source": taken["source"]}, "train": taken["request"],
                "promote": promote}  # fmt: skip

    return gate_options(train_options(_extend(command, "retraining", parts, gather)))
