"""The model card's section: the bundled model, how it was chosen, and its features' table."""

from __future__ import annotations

from online_inference.app.model.session import ModelSession
from online_inference.app.settings import BUNDLED_MODEL
from online_inference.card import Feature, ModelCard


GRAPHS = {"folded": "the pipeline folded into one linear classifier (docs/ARCHITECTURE.md)",
          "converted": "skl2onnx's conversion of the pipeline"}


def render_card() -> str:
    card = ModelSession(BUNDLED_MODEL.read_bytes()).card
    m = card.metrics
    lines = [
        f"**{card.name}** {card.version} — {card.description}",
        "",
        f"- Classifier: `{card.classifier}({', '.join(f'{k}={v}' for k, v in card.classifier_params.items())})`, "
        f"chosen by stratified {m.cv_folds}-fold CV ROC AUC: **{m.roc_auc_mean:.4f} ± {m.roc_auc_std:.4f}** "
        f"(accuracy {m.accuracy_mean:.4f} ± {m.accuracy_std:.4f})",
        f"- Trained on {card.training_data['rows']} rows of `{card.training_data['source']}`",
        f"- ONNX: input `{card.input_name}` float32 `[N, {len(card.features)}]`; outputs `{card.label_output}` "
        f"(int64) and `{card.probability_output}` (float32 `[N, {len(card.classes)}]`); sha256 `{card.sha256}`",
        f"- Built with {', '.join(f'{k} {v}' for k, v in card.libraries.items())}",
        f"- Served graph: {GRAPHS[card.graph]}",
        contributions_line(card),
        "",
        "| Candidate compared | CV ROC AUC | CV accuracy |",
        "|---|---|---|",
        *(f"| `{c.classifier}({', '.join(f'{k}={v}' for k, v in c.params.items())})`"
          f"{' (chosen)' if (c.classifier, c.params) == (card.classifier, card.classifier_params) else ''} "
          f"| {c.metrics.roc_auc_mean:.4f} ± {c.metrics.roc_auc_std:.4f} | {c.metrics.accuracy_mean:.4f} ± {c.metrics.accuracy_std:.4f} |"
          for c in card.compared),
        "",
        "| # | Feature | Kind | Meaning | Codes | Accepted (400 outside) | Training range (warns outside) "
        "| Weight, or code: weight | Training mean |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(card.features):
        codes = ", ".join(f"{k} {v}" for k, v in f.codes.items()) if f.codes else ""
        unit = f" ({f.unit})" if f.unit else ""
        lines.append(
            f"| {i} | `{f.name}` | {f.kind} | {f.description}{unit} | {codes} | "
            f"[{f.bounds.min:g}, {f.bounds.max:g}] | [{f.training.min:g}, {f.training.max:g}] | {terms(f)} | "
            f"{'' if f.mean is None else f'{f.mean:.4g}'} |"
        )
    if any(f.weight is not None or f.code_weights is not None for f in card.features):
        lines += ["", "A feature's contribution to a row's logit (`GET /model` has these terms in full): weight × (value − "
                      "mean) for a numeric or binary feature, its code's weight − mean for a categorical one (whose mean "
                      "is its code weight's, over the training rows)."]
    return "\n".join(lines)


def terms(feature: Feature) -> str:
    """A linear feature's weight, or each code's weight (``0: -0.2108, 1: -0.07127``), 4 significant digits."""
    if feature.weight is not None:
        return f"{feature.weight:.4g}"
    if feature.code_weights is not None:
        return ", ".join(f"{code}: {weight:.4g}" for code, weight in feature.code_weights.items())
    return ""


def contributions_line(card: ModelCard) -> str:
    """How the card's contributions are computed (or why there are none), for the card's summary."""
    c = card.contributions
    if c.method == "none":
        return f"- Contributions: none — {c.why} (`/explain` answers 501 with this reason)"
    return (f"- Contributions ({c.method}): {c.why}; output `{c.output}` (float32 `[N, {len(card.features)}]`, logit units "
            f"of class {card.positive_class}), computed only when the bool input `{c.flag}` is fed true; baseline "
            f"{c.baseline:.4f} (`/explain`: [Why this prediction](#why-this-prediction))")
