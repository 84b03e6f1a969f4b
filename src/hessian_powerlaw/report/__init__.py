"""Tables and figures of both wings' records (no torch): size bins, network tables, the
comparison, curvature fits, the fidelity study."""
