"""The renderers of the documents' generated sections (:mod:`online_inference.devtools.docs`),
one module per source: the service's code, the model card, the worked explanation, and the
measuring scripts' recorded results."""
