"""The plan of a training run: which models, each with its recipe, seed and threads, and
which of them to average into an ensemble.

A request names a profile and the options that win over it. ``plan_training`` checks
that they fit together before anything runs: ``ModelError`` for a model nobody
registered, ``ParameterError`` (naming the parameter) for a combination that cannot work.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from digitflow.errors import ParameterError, describe
from digitflow.models import SEED_MODELS, builder, role_of
from digitflow.recipes import PROFILES, ProfileName, Recipe, TrainConfig, member_seeds

Override = float | int | bool | str | None


class TrainRequest(Recipe):
    """What to train: a profile, and the models, recipe fields and ensemble that win over it."""

    profile: ProfileName = Field(
        default="seed",
        description="quick: the seed models, 2 epochs on 5,000 examples (~25 s on 2 CPU "
        "cores); seed: the brief's recipe (~1-2 min); best: the challengers with augmentation "
        "and a cosine schedule for 30 epochs, 2 more without, then their ensemble (~80 min). "
        "Each profile trains the line reader too, with its own recipe (quick: a tiny one). "
        "Fields you set win over the profile's.",
    )
    models: list[str] = Field(
        default_factory=lambda: list(SEED_MODELS),
        min_length=1,
        description="Registered names of the models to train.",
    )
    ensemble: list[str] = Field(
        default_factory=list,
        description="Two or more of the models to average into an `ensemble` candidate. "
        "Not set: the profile's, among the models trained (none if fewer than two).",
    )
    overrides: dict[str, dict[str, Override]] = Field(
        default_factory=dict,
        description='Per-model hyper-parameters, e.g. {"simple_cnn": {"learning_rate": 0.002}}.',
    )
    mode: Literal["local", "workers"] = Field(
        default="local",
        description="local: one process per model here; workers: one run of the train-model "
        "deployment per model on the gpu work pool.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_profile(cls, data: Any) -> Any:
        """Fill what is not given from the profile (an unknown one fails on its field)."""
        if isinstance(data, dict) and data.get("profile", "seed") in PROFILES:
            return with_profile(data)
        return data


def with_profile(given: dict[str, Any]) -> dict[str, Any]:
    """Request fields: the profile's under the ones given. The profile's ensemble shrinks to
    the models trained, and to none if fewer than two of them remain. A model with a
    recipe of its own in the profile gets it as overrides, less the fields given."""
    name = given.get("profile") or "seed"
    profile = PROFILES[name]
    filled = {**profile.recipe.model_dump(), "models": list(profile.models), **given}
    trained = filled["models"] if isinstance(filled["models"], list) else []
    if "ensemble" not in given:
        members = [m for m in profile.ensemble if m in trained]
        filled["ensemble"] = members if len(members) >= 2 else []
    overrides = dict(given.get("overrides") or {})
    for model, recipe in profile.own:
        if model in trained:
            own = {k: v for k, v in recipe.model_dump().items() if k not in given}
            overrides[model] = {**own, **overrides.get(model, {})}
    return {**filled, "overrides": overrides, "profile": name}


class TrainPlan(BaseModel):
    """Each model's training, in the order given, and the members of the ensemble."""

    configs: list[TrainConfig]
    ensemble: list[str]


def _check(request: TrainRequest) -> None:
    """ParameterError unless models, overrides and ensemble fit together."""
    for name in request.models:
        builder(name)  # ModelError with the registered names
    if len(set(request.models)) < len(request.models):
        raise ParameterError("models", f"a model is named twice: {', '.join(request.models)}")
    unknown = sorted(set(request.overrides) - set(request.models))
    if unknown:
        raise ParameterError("overrides", f"name models that are not trained: {unknown}")
    members = request.ensemble
    readers = [m for m in members if role_of(m) != "classifier"]
    if readers:
        raise ParameterError("ensemble", f"{', '.join(readers)}: only classifiers are averaged")
    if members and (len(set(members)) < 2 or not set(members) <= set(request.models)):
        raise ParameterError(
            "ensemble",
            f"{', '.join(members)}: an ensemble needs two or more different models among "
            f"those trained ({', '.join(request.models)})",
        )


def _config(name: str, fields: dict[str, Any], threads: int | None) -> TrainConfig:
    try:
        return TrainConfig(model=name, threads=threads, **fields)
    except ValidationError as exc:
        raise ParameterError("overrides", f"{name}: {describe(exc)}") from exc


def plan_training(request: TrainRequest) -> TrainPlan:
    """The configs of a run: in ``local`` mode, the classifiers share this machine's cores,
    and a line reader, which trains longest, gets them all (the others soon finish)."""
    _check(request)
    cores = os.cpu_count() or 1
    shared = max(1, cores // len(request.models))
    seeds = member_seeds(request.seed, request.ensemble)
    recipe = request.model_dump(include=set(Recipe.model_fields))

    def threads(name: str) -> int | None:
        if request.mode != "local":
            return None
        return cores if role_of(name) == "reader" else shared

    configs = [
        _config(name, {**recipe, "seed": seeds.get(name, request.seed),
                       **request.overrides.get(name, {})}, threads(name))
        for name in request.models
    ]  # fmt: skip
    return TrainPlan(configs=configs, ensemble=request.ensemble)
