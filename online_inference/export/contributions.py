"""Each feature's exact contribution to the folded linear score: what SHAP's LinearExplainer
computes for independent features with the training rows as the background (exact Shapley values
of a linear model).

The folded score is ``z = b + Σ_j w_j x_j + Σ_k v_k [x_col(k) = code(k)]`` (:mod:`fold`). Centred on
the training rows, it splits per feature ``j`` into

- ``w_j (x_j - mean_j)`` for a raw column (numeric, binary): its weight times its distance from its
  training mean;
- ``v_(code of x_j) - average_j`` for a coded one: its code's weight minus that weight's training
  average;

and ``baseline = b + Σ_j w_j mean_j + Σ_j average_j`` (the score of the average training row)
makes ``baseline + Σ_j contribution_j = z`` exactly, in real numbers.

In the graph each contribution comes from elementwise operations and a product with a matrix of
zeros and ones that adds to each coded feature the weight of its one matched code (a single
non-zero term): no sum whose order could change with the batch, so a row gets the same bits alone
and anywhere in any batch, like its probabilities.

ONNX Runtime runs every node of a graph, whatever outputs a call asks for, so the contributions
sit behind an ``If`` on a boolean input, ``explain``, which is false unless a call feeds it: a call
that does not ask computes none (an empty ``[0, width]``) and pays for one node, not for all of
theirs (docs/EXPLANATIONS.md has the measurements). :func:`add_on_request` does it for every model
family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.onnx_pb import NodeProto, TensorProto

if TYPE_CHECKING:  # fold builds the graph with these nodes
    from online_inference.export.fold import LinearScore

CONTRIBUTION_OUTPUT = "contributions"
EXPLAIN_FLAG = "explain"  # the graph's bool input that turns them on


@dataclass(frozen=True)
class LinearContributions:
    """Per feature: its weight (raw columns), its code weights (coded ones), its training mean
    (of the value, or of its code's weight); and the baseline, in logit units of the positive class."""

    weights: np.ndarray  # float64 [width]: 0 for a coded column
    means: np.ndarray  # float64 [width]: a raw column's training mean, a coded column's average code weight
    code_weights: dict[int, dict[float, float]]  # column -> code -> weight
    baseline: float

    def of(self, X: np.ndarray) -> np.ndarray:
        """float64 ``[N, width]`` contributions of raw rows, computed directly (the reference)."""
        contributions = self.weights * (X - np.where(self.is_coded, 0.0, self.means))
        for column, codes in self.code_weights.items():
            contributions[:, column] = [codes.get(float(x), 0.0) for x in X[:, column]]
            contributions[:, column] -= self.means[column]
        return contributions

    @property
    def is_coded(self) -> np.ndarray:
        return np.isin(np.arange(len(self.weights)), list(self.code_weights))


def linear_contributions(score: LinearScore, X_train: np.ndarray) -> LinearContributions:
    """The contributions of the folded score, centred on the training rows ``X_train``."""
    width = X_train.shape[1]
    code_weights: dict[int, dict[float, float]] = {}
    for column, code, weight in zip(score.code_columns, score.codes, score.code_weights):
        code_weights.setdefault(column, {})[code] = weight
    means = X_train.mean(axis=0)
    for column, codes in code_weights.items():
        means[column] = np.mean([codes.get(float(x), 0.0) for x in X_train[:, column]])
    coded = np.isin(np.arange(width), list(code_weights))
    raw_means = np.where(coded, 0.0, means)
    baseline = score.bias + float(np.sum(score.weights * raw_means)) + float(np.sum(means[coded]))
    return LinearContributions(np.where(coded, 0.0, score.weights), means, code_weights, baseline)


def contribution_nodes(source: str, one_hot: str | None, score: LinearScore, terms: LinearContributions) -> tuple[list[NodeProto], list[TensorProto]]:
    """Nodes from the input ``source`` (and the 0/1 code slots ``one_hot``) to ``contributions``
    float ``[N, width]``."""
    width = len(terms.weights)
    raw_centre = np.where(terms.is_coded, 0.0, terms.means).astype(np.float32)
    nodes = [
        helper.make_node("Sub", [source, "raw_means"], ["centred"]),
        helper.make_node("Mul", ["centred", "raw_weights"], ["raw_contributions"]),
    ]
    constants = [numpy_helper.from_array(raw_centre, "raw_means"),
                 numpy_helper.from_array(terms.weights.astype(np.float32), "raw_weights")]
    if one_hot is None:
        nodes[-1].output[0] = CONTRIBUTION_OUTPUT
        return nodes, constants
    slots_to_features = np.zeros((len(score.code_columns), width), dtype=np.float32)
    slots_to_features[np.arange(len(score.code_columns)), score.code_columns] = 1
    nodes += [
        helper.make_node("Mul", [one_hot, "slot_weights"], ["matched_weights"]),
        helper.make_node("MatMul", ["matched_weights", "slots_to_features"], ["code_weight"]),  # one non-zero per feature
        helper.make_node("Sub", ["code_weight", "code_averages"], ["code_contributions"]),
        helper.make_node("Add", ["raw_contributions", "code_contributions"], [CONTRIBUTION_OUTPUT]),
    ]
    constants += [
        numpy_helper.from_array(np.array(score.code_weights, dtype=np.float32), "slot_weights"),
        numpy_helper.from_array(slots_to_features, "slots_to_features"),
        numpy_helper.from_array(np.where(terms.is_coded, terms.means, 0.0).astype(np.float32), "code_averages"),
    ]
    return nodes, constants


def add_on_request(model: onnx.ModelProto, nodes: list[NodeProto], constants: list[TensorProto], width: int) -> None:
    """Append ``nodes`` (which compute ``contributions``) to the graph behind an ``If`` on the
    input ``explain`` (a bool scalar, false unless a call feeds it), and their output last."""
    def branch(name: str, branch_nodes: list[NodeProto], initializers: list[TensorProto]) -> onnx.GraphProto:
        output = helper.make_tensor_value_info(branch_nodes[-1].output[0], TensorProto.FLOAT, [None, width])
        return helper.make_graph(branch_nodes, name, [], [output], initializers)

    computed = [*nodes[:-1], rename_output(nodes[-1], "computed_contributions")]
    none = helper.make_node("Constant", [], ["no_contributions"], value=numpy_helper.from_array(np.zeros((0, width), np.float32)))
    model.graph.node.append(helper.make_node("If", [EXPLAIN_FLAG], [CONTRIBUTION_OUTPUT],
                                             then_branch=branch("contributions", computed, constants),
                                             else_branch=branch("no_contributions", [none], [])))
    model.graph.initializer.append(numpy_helper.from_array(np.array(False), EXPLAIN_FLAG))
    model.graph.input.append(helper.make_tensor_value_info(EXPLAIN_FLAG, TensorProto.BOOL, []))
    model.graph.output.append(helper.make_tensor_value_info(CONTRIBUTION_OUTPUT, TensorProto.FLOAT, [None, width]))


def rename_output(node: NodeProto, name: str) -> NodeProto:
    renamed = NodeProto()
    renamed.CopyFrom(node)
    renamed.output[0] = name
    return renamed
