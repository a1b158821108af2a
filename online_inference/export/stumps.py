"""Each feature's exact contribution to the score of gradient-boosted stumps: the converted graph
with a third output, and the float64 reference it is checked against.

A binary ``GradientBoostingClassifier`` scores ``z(x) = init + Σ_t lr·h_t(x)`` (in logit units of
the positive class). A tree of depth ≤ 1 (a stump) reads one transformed column ``c_t``, and each
transformed column (a scaled value, a one-hot slot, a passed value) belongs to one input feature
(:func:`shapley.source_features`). So the score is a sum of per-feature terms,
``z(x) = init + Σ_j f_j(x_j)`` with ``f_j = Σ_{t splits on a column of j} lr·h_t``, and with the
training rows as background and the features independent the Shapley value of feature ``j`` is
exactly ``f_j(x_j) − mean over the training rows of f_j``: for each of its trees, the leaf value
the row reaches minus the tree's training mean. ``baseline = init + Σ_t training mean of lr·h_t``
(a tree without a split is a constant: it only moves the baseline), so that
``baseline + Σ_j contribution_j = z(x)``. Trees of depth 2 or more mix features: they have no
exact per-feature terms, and :class:`NotAdditive` says so.

The graph computes the contributions with a ``TreeEnsembleRegressor`` on the very float32 tensor
skl2onnx's ``TreeEnsembleClassifier`` reads, with copies of its nodes (the same columns,
thresholds and modes): each row reaches, in each tree, the leaf that made its probability, even
where float32 rounding sends it to a different leaf than float64 would. The leaf's weight (the
graph's ``lr·h_t``, in float32) is centred on the tree's training mean, measured by the graph
itself on the training rows, and goes to the input feature the tree splits on. A row's sums run
over its own trees in their order whatever else is in the batch (the service runs one thread,
sequentially): the same bits alone and anywhere in any batch, like its probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import NodeProto, TensorProto, helper
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline

from online_inference.app.model.session import session_options
from online_inference.export.contributions import CONTRIBUTION_OUTPUT, add_on_request
from online_inference.export.shapley import source_features, transformed

LEAF_WEIGHTS = "tree_leaf_weights"  # the probe's output: each tree's leaf weight per row


class NotAdditive(ValueError):
    """The model is not a binary GradientBoostingClassifier, over a ColumnTransformer, whose every
    tree has depth ≤ 1: its score has no exact per-feature contributions."""


def check_stumps(pipeline: Pipeline) -> GradientBoostingClassifier:
    """The pipeline's classifier; NotAdditive unless its score is a sum of per-feature terms."""
    classifier = pipeline[-1]
    if len(pipeline) != 2 or not isinstance(pipeline[0], ColumnTransformer) or not isinstance(classifier, GradientBoostingClassifier):
        raise NotAdditive(f"not gradient-boosted stumps over a ColumnTransformer: {[type(step).__name__ for _, step in pipeline.steps]}")
    if len(classifier.classes_) != 2:
        raise NotAdditive(f"{len(classifier.classes_)} classes: a score per class, not one logit")
    if classifier.init not in (None, "zero"):
        raise NotAdditive(f"the init estimator {classifier.init!r} need not score per feature")
    depth = max(tree.get_depth() for tree in classifier.estimators_[:, 0])
    if depth > 1:
        raise NotAdditive(f"trees of depth {depth} mix features: no exact per-feature contributions")
    return classifier


def tree_node(converted: onnx.ModelProto) -> tuple[NodeProto, dict[str, Any]]:
    """skl2onnx's TreeEnsembleClassifier and its attributes."""
    nodes = [node for node in converted.graph.node if node.op_type == "TreeEnsembleClassifier"]
    if len(nodes) != 1:
        raise ValueError(f"expected one TreeEnsembleClassifier in the converted graph, found {len(nodes)}")
    trees = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    if len(set(trees["class_ids"])) != 1 or len(trees["base_values"]) != 1:
        raise ValueError("expected a binary classifier's trees: one score per leaf, one base value")
    return nodes[0], trees


def split_columns(trees: dict[str, Any]) -> dict[int, int]:
    """The transformed column each tree of the graph splits on (a tree without a split: none)."""
    splits: dict[int, int] = {}
    for tree, mode, column in zip(trees["nodes_treeids"], trees["nodes_modes"], trees["nodes_featureids"]):
        if mode != b"LEAF":
            if tree in splits:
                raise NotAdditive(f"tree {tree} of the graph splits more than once: it mixes features")
            splits[tree] = column
    return splits


def leaf_regressor(node: NodeProto, trees: dict[str, Any], output: str, targets: dict[int, int],
                   weights: np.ndarray, n_targets: int) -> NodeProto:
    """A TreeEnsembleRegressor on the classifier's input with its trees in ``targets`` (tree ->
    target): each leaf gives its tree's target the leaf's ``weights`` entry; summed, no base."""
    kept = [i for i, tree in enumerate(trees["nodes_treeids"]) if tree in targets]
    leaves = [i for i, tree in enumerate(trees["class_treeids"]) if tree in targets]
    copied = {name: [values[i] for i in kept] for name, values in trees.items() if name.startswith("nodes_")}
    return helper.make_node(
        "TreeEnsembleRegressor", [node.input[0]], [output], name=output, domain="ai.onnx.ml", **copied,
        n_targets=n_targets, aggregate_function="SUM", post_transform="NONE", base_values=[0.0] * n_targets,
        target_ids=[targets[trees["class_treeids"][i]] for i in leaves],
        target_treeids=[trees["class_treeids"][i] for i in leaves],
        target_nodeids=[trees["class_nodeids"][i] for i in leaves],
        target_weights=[float(weights[i]) for i in leaves])


def with_output(converted: onnx.ModelProto, node: NodeProto, width: int) -> onnx.ModelProto:
    """A copy of the graph with ``node`` added and its output float ``[N, width]`` last."""
    graph = onnx.ModelProto()
    graph.CopyFrom(converted)
    graph.graph.node.append(node)
    graph.graph.output.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, [None, width]))
    return graph


def training_means(converted: onnx.ModelProto, node: NodeProto, trees: dict[str, Any], X_train: np.ndarray) -> dict[int, float]:
    """Per tree of the graph, the mean of its float32 leaf weights over the training rows, as the
    graph reaches them (a probe with one target per tree)."""
    tree_ids = sorted(set(trees["nodes_treeids"]))
    probe = with_output(converted, leaf_regressor(node, trees, LEAF_WEIGHTS, {t: i for i, t in enumerate(tree_ids)},
                                                  np.asarray(trees["class_weights"]), len(tree_ids)), len(tree_ids))
    session = ort.InferenceSession(probe.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    weights = session.run([LEAF_WEIGHTS], {converted.graph.input[0].name: X_train.astype(np.float32)})[0]
    return dict(zip(tree_ids, weights.astype(np.float64).mean(axis=0).tolist()))


def add_stump_contributions(pipeline: Pipeline, converted: onnx.ModelProto, X_train: np.ndarray) -> tuple[onnx.ModelProto, float]:
    """skl2onnx's conversion ``converted`` of gradient-boosted stumps with each input feature's
    contribution as a third output, float ``[N, width]``, centred on ``X_train``; and the baseline."""
    check_stumps(pipeline)
    width = X_train.shape[1]
    node, trees = tree_node(converted)
    owners = source_features(pipeline[0], width)
    means = training_means(converted, node, trees, X_train)
    centred = np.asarray(trees["class_weights"]) - [means[tree] for tree in trees["class_treeids"]]
    feature_of = {tree: int(owners[column]) for tree, column in split_columns(trees).items()}
    contributions = leaf_regressor(node, trees, CONTRIBUTION_OUTPUT, feature_of, centred, width)
    graph = onnx.ModelProto()
    graph.CopyFrom(converted)
    add_on_request(graph, [contributions], [], width)
    return graph, float(trees["base_values"][0]) + sum(means.values())


def tree_shapley(pipeline: Pipeline, X: np.ndarray, X_train: np.ndarray) -> tuple[np.ndarray, float]:
    """float64 ``[N, features]`` Shapley values of the rows ``X`` for gradient-boosted stumps over
    a ColumnTransformer, from scikit-learn's trees, and the baseline (the mean training score)."""
    classifier = check_stumps(pipeline)
    rows, background = transformed(pipeline[0], X), transformed(pipeline[0], X_train)
    owners = source_features(pipeline[0], X.shape[1])
    values = np.zeros((len(X), X.shape[1]))
    baseline = float(classifier._raw_predict_init(background[:1])[0, 0])  # the init's constant score: no public API
    for tree in classifier.estimators_[:, 0]:
        mean = classifier.learning_rate * float(tree.predict(background).mean())
        baseline += mean
        if tree.tree_.node_count > 1:
            values[:, owners[tree.tree_.feature[0]]] += classifier.learning_rate * tree.predict(rows) - mean
    return values, baseline
