"""The noise study (How noise affects the Hessian spectrum in overparameterized neural
networks): toy valleys (`valleys`, numpy only), its small network and noisy descent
(`small_net`) and the experiments' records (`experiments`)."""

# The noise models of descent from a network minimum (small_net), named here without torch.
DESCENT_NOISES = ("sgd", "gd", "isotropic", "isotropic-topk")
