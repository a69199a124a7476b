"""Explaining: the questions (`questions`, each a margin over embeddings), the one result base (`results`),
and the estimators with their results: the paper's perturbations and the decoded path (`siamese`,
`explanation`, `contrast`, `_graph`), and the probe that asks f (`probe`, `probe_explanation`). Prototypes
(`prototypes`) are the class embeddings every class question refers to.

Nothing here imports `siamese_xai.training`, `siamese_xai.evaluation`, `siamese_xai.scale` or the command
line (`.importlinter`)."""
