"""The network wing (torch): data sets, models, training, Hessian operators, eigensolvers,
trace estimators, curvature measurements and per-network spectra."""
