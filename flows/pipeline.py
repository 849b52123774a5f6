"""Flow: the main job. Retrain (ingest → train → promote), then score a folder of scans."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field, field_validator

from digitflow.scoring.batch import BatchSummary
from flows.params import NO_CREDENTIALS, StoreParams, without_credentials
from flows.retrain import RetrainParams, RetrainSummary, retrain_flow
from flows.score import ScoreParams, score_flow
from tasks.samples import SampleAccuracy, check_against_truth, make_samples


class PipelineParams(StoreParams):
    """Parameters of the main job."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a source URL may hold a password

    retrain: RetrainParams = Field(default_factory=RetrainParams)
    scans: str | None = Field(
        default=None,
        description="Folder or s3:// prefix of scans to score. Empty: generated sample scans "
        "of the dataset's test digits, checked against their ground truth.",
        json_schema_extra=NO_CREDENTIALS,
    )
    sample_pages: int = Field(default=12, ge=1, le=500)
    sample_seed: int = 0

    _scans_without_credentials = field_validator("scans")(without_credentials)


class PipelineSummary(BaseModel):
    """What the main job did, end to end."""

    retrain: RetrainSummary
    scans: str
    scoring: BatchSummary
    sample_accuracy: SampleAccuracy | None


@flow(name="pipeline")
def pipeline_flow(params: PipelineParams | None = None) -> PipelineSummary:
    """Retrain, then read every digit of the scans with the champion."""
    params = params or PipelineParams()
    settings = params.settings()
    store = settings.store
    retrain = retrain_flow(params.retrain.model_copy(update={"store": store}))
    samples = None
    scans = params.scans
    if scans is None:
        samples = make_samples(
            store,
            retrain.dataset_version,
            settings.work_dir,
            params.sample_pages,
            params.sample_seed,
        )
        scans = samples.folder
    scoring = score_flow(ScoreParams(input=scans, store=store))
    accuracy = None
    if samples is not None:
        accuracy = check_against_truth(store, scoring.batch_id, samples.truth_csv)
    return PipelineSummary(retrain=retrain, scans=scans, scoring=scoring, sample_accuracy=accuracy)
